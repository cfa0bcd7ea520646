"""Every query on the `oauth_*` tables, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from plugins.oauth.models import Identity, OAuthFlow


class FlowRepository:
    """`oauth_flow`: the sign-ins and links in progress."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, flow: OAuthFlow) -> None:
        self.session.add(flow)
        await self.session.flush()

    async def by_state(self, state_hash: str) -> OAuthFlow | None:
        stmt = select(OAuthFlow).where(col(OAuthFlow.state_hash) == state_hash)
        return (await self.session.exec(stmt)).first()

    async def spend(self, flow_id: str, now: datetime) -> bool:
        """Use the flow once, if it is unused and unexpired; True for the one caller that
        did. One conditional UPDATE, so of two concurrent callbacks exactly one changes the
        row (PostgreSQL re-checks the condition after the other commits; SQLite's writers
        are serialised)."""
        result: CursorResult[tuple[()]] = await self.session.exec(  # type: ignore[call-overload]
            update(OAuthFlow)
            .where(
                col(OAuthFlow.id) == flow_id,
                col(OAuthFlow.used_at).is_(None),
                col(OAuthFlow.expires_at) > now,
            )
            .values(used_at=now)
        )
        return result.rowcount == 1

    async def purge(self, before: datetime) -> None:
        """Forget the flows that expired before `before` (used or not)."""
        await self.session.exec(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < before))  # type: ignore[call-overload]


class IdentityRepository:
    """`oauth_identity`: the provider accounts linked to users."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_subject(self, provider: str, subject: str) -> Identity | None:
        stmt = select(Identity).where(
            col(Identity.provider) == provider, col(Identity.subject) == subject
        )
        return (await self.session.exec(stmt)).first()

    async def add(self, identity: Identity) -> bool:
        """Store the link; False (and nothing stored) when the provider account is linked
        already, by a concurrent sign-in that won the unique (provider, subject)."""
        try:
            async with self.session.begin_nested():
                self.session.add(identity)
        except IntegrityError:
            return False
        return True

    async def touch(self, identity_id: str, now: datetime) -> None:
        await self.session.exec(
            update(Identity).where(col(Identity.id) == identity_id).values(last_used_at=now)
        )

    async def of_user(self, user_id: str, *, limit: int, cursor: str | None) -> list[Identity]:
        """Up to `limit + 1` identities of the user, oldest first, after `cursor`."""
        stmt = select(Identity).where(col(Identity.user_id) == user_id)
        if cursor is not None:
            stmt = stmt.where(col(Identity.id) > cursor)
        stmt = stmt.order_by(col(Identity.id)).limit(limit + 1)
        return list((await self.session.exec(stmt)).all())

    async def lock_all_of_user(self, user_id: str) -> list[Identity]:
        """Every identity of the user, row-locked until the transaction ends: two unlinks
        at once cannot each leave the other as the account's last way in."""
        stmt = select(Identity).where(col(Identity.user_id) == user_id).with_for_update()
        return list((await self.session.exec(stmt)).all())

    async def remove(self, identity_id: str) -> None:
        await self.session.exec(delete(Identity).where(col(Identity.id) == identity_id))  # type: ignore[call-overload]
