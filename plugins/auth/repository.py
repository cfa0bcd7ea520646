"""Every query on the `auth_*` tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy import CursorResult, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from plugins.auth.models import AuthSession, Credential, RefreshToken


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Credentials

    async def credential(self, user_id: str) -> Credential | None:
        return await self.session.get(Credential, user_id)

    async def lock_credential(self, user_id: str) -> Credential | None:
        """The user's credential as stored now, row-locked until the transaction ends."""
        return await self.session.get(
            Credential, user_id, with_for_update=True, populate_existing=True
        )

    async def store_password(
        self, user_id: str, password_hash: str, now: datetime, *, locked: Credential | None
    ) -> None:
        """Give the user this password: update `locked` (their credential, already locked
        by the caller) or create the credential when they have none."""
        credential = locked or Credential(user_id=user_id, password_hash=password_hash)
        credential.password_hash = password_hash
        credential.changed_at = now
        self.session.add(credential)
        await self.session.flush()

    async def rehash(self, credential: Credential, password_hash: str) -> None:
        """The same password under new parameters: not a change (`changed_at` stays)."""
        credential.password_hash = password_hash
        self.session.add(credential)
        await self.session.flush()

    # Sessions

    async def add(self, *rows: AuthSession | RefreshToken) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def get_session(self, session_id: str) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def active_sessions(
        self, user_id: str, now: datetime, *, limit: int, cursor: str | None
    ) -> list[AuthSession]:
        """Up to `limit + 1` live sessions of the user, newest first, after `cursor`."""
        stmt = select(AuthSession).where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        if cursor is not None:
            stmt = stmt.where(col(AuthSession.id) < cursor)
        stmt = stmt.order_by(col(AuthSession.id).desc()).limit(limit + 1)
        return list((await self.session.exec(stmt)).all())

    async def revoke_sessions(
        self, user_id: str, now: datetime, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        """Revoke the user's live sessions (just `only`, or all but `keep`); their ids."""
        stmt = update(AuthSession).where(
            col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
        )
        if only is not None:
            stmt = stmt.where(col(AuthSession.id) == only)
        if keep is not None:
            stmt = stmt.where(col(AuthSession.id) != keep)
        revoked = stmt.values(revoked_at=now).returning(col(AuthSession.id))
        return [row[0] for row in await self.session.exec(revoked)]

    async def revoked_since(self, since: datetime) -> Sequence[str]:
        """Ids of the sessions revoked at or after `since`."""
        stmt = select(AuthSession.id).where(col(AuthSession.revoked_at) >= since)
        return (await self.session.exec(stmt)).all()

    async def touch(self, session_id: str, now: datetime) -> None:
        await self.session.exec(
            update(AuthSession).where(col(AuthSession.id) == session_id).values(last_used_at=now)
        )

    # Refresh tokens

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        stmt = select(RefreshToken).where(col(RefreshToken.token_hash) == token_hash)
        return (await self.session.exec(stmt)).first()

    async def spend(self, token_id: str, replaced_by: str, now: datetime) -> bool:
        """Mark the token used, if nobody has yet; True for the one caller that did.

        One conditional UPDATE, so of two concurrent refreshes with the same token exactly
        one changes the row (PostgreSQL re-checks the condition after the other commits;
        SQLite's writers are serialised).
        """
        result: CursorResult[tuple[()]] = await self.session.exec(  # type: ignore[call-overload]
            update(RefreshToken)
            .where(col(RefreshToken.id) == token_id, col(RefreshToken.used_at).is_(None))
            .values(used_at=now, replaced_by=replaced_by)
        )
        return result.rowcount == 1


def revoked_sessions_loader(database: Database) -> Callable[[datetime], Awaitable[list[str]]]:
    """What `RevokedSessions` reloads with: recent revocations, read from the primary."""

    async def load(since: datetime) -> list[str]:
        async with database.primary_read_sessions() as session:
            return list(await AuthRepository(session).revoked_since(since))

    return load
