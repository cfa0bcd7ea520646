"""Every query on the `auth_*` tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import CursorResult, bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import CoreStatement, Database, StatementTarget, dialect_of
from plugins.auth.models import (
    ActionToken,
    AuthSession,
    Credential,
    Identity,
    OAuthFlow,
    RefreshToken,
)


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential as a sign-in checks it: the hash, and when the password last changed."""

    password_hash: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements of every sign-in and every refresh, built once (building a statement
    costs more CPU than running it). Values come in as bound parameters; an INSERT's are
    named `new_<column>`."""

    credential: CoreStatement
    lock_credential: CoreStatement
    rehash: CoreStatement
    insert_session: CoreStatement
    insert_refresh_token: CoreStatement
    insert_session_and_token: CoreStatement  # PostgreSQL: one statement for both rows
    refresh_token: Any
    spend: CoreStatement
    touch: CoreStatement


_SESSION_COLUMNS = ("id", "user_id", "created_at", "last_used_at", "expires_at", "user_agent", "ip")
_REFRESH_TOKEN_COLUMNS = ("id", "session_id", "token_hash", "issued_at")


@cache
def _queries() -> _Statements:
    credential = select(Credential.password_hash, Credential.changed_at).where(
        col(Credential.user_id) == bindparam("user_id")
    )
    return _Statements(
        credential=CoreStatement(credential),
        lock_credential=CoreStatement(credential.with_for_update()),
        rehash=CoreStatement(
            update(Credential)
            .where(col(Credential.user_id) == bindparam("owner"))
            .values(password_hash=bindparam("new_hash"))
        ),
        insert_session=CoreStatement(_insert(AuthSession, _SESSION_COLUMNS)),
        insert_refresh_token=CoreStatement(_insert(RefreshToken, _REFRESH_TOKEN_COLUMNS)),
        insert_session_and_token=CoreStatement(
            _insert(RefreshToken, _REFRESH_TOKEN_COLUMNS, "token_").add_cte(
                _insert(AuthSession, _SESSION_COLUMNS, "session_").cte("new_session")
            )
        ),
        refresh_token=select(RefreshToken, AuthSession)
        .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
        .where(col(RefreshToken.token_hash) == bindparam("token_hash")),
        spend=CoreStatement(
            update(RefreshToken)
            .where(
                col(RefreshToken.id) == bindparam("token_id"), col(RefreshToken.used_at).is_(None)
            )
            .values(used_at=bindparam("now"), replaced_by=bindparam("replaced_by"))
        ),
        touch=CoreStatement(
            update(AuthSession)
            .where(col(AuthSession.id) == bindparam("session_id"))
            .values(last_used_at=bindparam("now"))
        ),
    )


def _insert(model: Any, columns: Sequence[str], prefix: str = "new_") -> Any:
    return insert(model).values({name: bindparam(f"{prefix}{name}") for name in columns})


def _new(row: Mapping[str, Any], prefix: str = "new_") -> dict[str, Any]:
    return {f"{prefix}{name}": value for name, value in row.items()}


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

    async def add(self, *rows: AuthSession | RefreshToken | ActionToken) -> None:
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

    # Refresh tokens

    async def refresh_token(self, token_hash: str) -> tuple[RefreshToken, AuthSession] | None:
        """The refresh token with this hash and its session, in one round trip."""
        row = (
            await self.session.exec(_queries().refresh_token, params={"token_hash": token_hash})
        ).first()
        return (row[0], row[1]) if row is not None else None

    # Mailed single-use tokens (password reset, email verification)

    async def action_token(self, token_hash: str, purpose: str) -> ActionToken | None:
        stmt = select(ActionToken).where(
            col(ActionToken.token_hash) == token_hash, col(ActionToken.purpose) == purpose
        )
        return (await self.session.exec(stmt)).first()

    async def spend_action_token(self, token_id: str, now: datetime) -> bool:
        """Use the token once; True for the one caller that did (as `AuthStatements.spend`)."""
        result: CursorResult[tuple[()]] = await self.session.exec(  # type: ignore[call-overload]
            update(ActionToken)
            .where(col(ActionToken.id) == token_id, col(ActionToken.used_at).is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1


class AuthStatements:
    """The queries of every sign-in and refresh as `CoreStatement`s, on any of their targets:
    the primary's engine, a `AsyncConnection`, or a session (its transaction)."""

    def __init__(self, target: StatementTarget) -> None:
        self.target = target

    async def credential(self, user_id: str) -> StoredCredential | None:
        return _stored(await _queries().credential.first(self.target, user_id=user_id))

    async def lock_credential(self, user_id: str) -> StoredCredential | None:
        """The user's credential as stored now, row-locked until the transaction ends."""
        return _stored(await _queries().lock_credential.first(self.target, user_id=user_id))

    async def rehash(self, user_id: str, password_hash: str) -> None:
        """The same password under new parameters: not a change (`changed_at` stays)."""
        await _queries().rehash.execute(self.target, owner=user_id, new_hash=password_hash)

    async def open_session(self, session: Mapping[str, Any], token: Mapping[str, Any]) -> None:
        """A new session and its first refresh token. On PostgreSQL one statement inserts
        both (a data-modifying WITH; the token's foreign key is checked at its end), so a
        sign-in makes one round trip for them; elsewhere, two statements."""
        queries = _queries()
        if dialect_of(self.target).name == "postgresql":
            await queries.insert_session_and_token.execute(
                self.target, **_new(session, "session_"), **_new(token, "token_")
            )
            return
        await queries.insert_session.execute(self.target, **_new(session))
        await queries.insert_refresh_token.execute(self.target, **_new(token))

    async def add_refresh_token(self, row: Mapping[str, Any]) -> None:
        await _queries().insert_refresh_token.execute(self.target, **_new(row))

    async def spend(self, token_id: str, replaced_by: str, now: datetime) -> bool:
        """Mark the refresh token used, if nobody has yet; True for the one caller that did.

        One conditional UPDATE, so of two concurrent refreshes with the same token exactly
        one changes the row (PostgreSQL re-checks the condition after the other commits;
        SQLite's writers are serialised).
        """
        changed = await _queries().spend.execute(
            self.target, token_id=token_id, replaced_by=replaced_by, now=now
        )
        return changed == 1

    async def touch(self, session_id: str, now: datetime) -> None:
        await _queries().touch.execute(self.target, session_id=session_id, now=now)


def _stored(fields: Mapping[str, Any] | None) -> StoredCredential | None:
    return StoredCredential(**fields) if fields is not None else None


def revoked_sessions_loader(database: Database) -> Callable[[datetime], Awaitable[list[str]]]:
    """What `RevokedSessions` reloads with: recent revocations, read from the primary."""

    async def load(since: datetime) -> list[str]:
        async with database.primary_read_sessions() as session:
            return list(await AuthRepository(session).revoked_since(since))

    return load


class IdentityRepository:
    """Every query on `auth_identity` and `auth_oauth_flow` (OAuth sign-in)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Flows in progress

    async def add_flow(self, flow: OAuthFlow) -> None:
        self.session.add(flow)
        await self.session.flush()

    async def flow(self, state_hash: str) -> OAuthFlow | None:
        stmt = select(OAuthFlow).where(col(OAuthFlow.state_hash) == state_hash)
        return (await self.session.exec(stmt)).first()

    async def spend_flow(self, flow_id: str, now: datetime) -> bool:
        """Use the flow once, if it is unused and unexpired; True for the one caller that
        did (one conditional UPDATE, as `AuthRepository.spend`)."""
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

    async def purge_flows(self, before: datetime) -> None:
        """Forget the flows that expired before `before` (used or not)."""
        await self.session.exec(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < before))  # type: ignore[call-overload]

    # Linked identities

    async def by_subject(self, provider: str, subject: str) -> Identity | None:
        stmt = select(Identity).where(
            col(Identity.provider) == provider, col(Identity.subject) == subject
        )
        return (await self.session.exec(stmt)).first()

    async def add_identity(self, identity: Identity) -> bool:
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
