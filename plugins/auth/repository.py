"""Every query on the `auth_*` tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import CursorResult, bindparam, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import CoreStatement, Database, dialect_of
from plugins.auth.models import ActionToken, AuthSession, Credential, RefreshToken


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
    change_password: CoreStatement
    insert_credential: CoreStatement
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
        change_password=CoreStatement(
            update(Credential)
            .where(col(Credential.user_id) == bindparam("owner"))
            .values(password_hash=bindparam("new_hash"), changed_at=bindparam("new_changed_at"))
        ),
        insert_credential=CoreStatement(
            _insert(Credential, ("user_id", "password_hash", "changed_at"))
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
    """Every query on the `auth_*` tables of passwords, sessions and mailed tokens, in
    `session`'s transaction. The statements of every sign-in and refresh are Core
    statements built once (`_queries`); the rest go through the ORM."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Credentials

    async def credential(self, user_id: str) -> StoredCredential | None:
        return _stored(await _queries().credential.first(self.session, user_id=user_id))

    async def lock_credential(self, user_id: str) -> StoredCredential | None:
        """The user's credential as stored now, row-locked until the transaction ends."""
        return _stored(await _queries().lock_credential.first(self.session, user_id=user_id))

    async def store_password(
        self, user_id: str, password_hash: str, now: datetime, *, locked: StoredCredential | None
    ) -> None:
        """Give the user this password: replace `locked` (their credential, already locked
        by the caller) or create the credential when they have none."""
        queries = _queries()
        if locked is not None:
            await queries.change_password.execute(
                self.session, owner=user_id, new_hash=password_hash, new_changed_at=now
            )
            return
        await queries.insert_credential.execute(
            self.session,
            **_new({"user_id": user_id, "password_hash": password_hash, "changed_at": now}),
        )

    async def rehash(self, user_id: str, password_hash: str) -> None:
        """The same password under new parameters: not a change (`changed_at` stays)."""
        await _queries().rehash.execute(self.session, owner=user_id, new_hash=password_hash)

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

    async def open_session(self, session: Mapping[str, Any], token: Mapping[str, Any]) -> None:
        """A new session and its first refresh token. On PostgreSQL one statement inserts
        both (a data-modifying WITH; the token's foreign key is checked at its end), so a
        sign-in makes one round trip for them; elsewhere, two statements."""
        queries = _queries()
        if dialect_of(self.session).name == "postgresql":
            await queries.insert_session_and_token.execute(
                self.session, **_new(session, "session_"), **_new(token, "token_")
            )
            return
        await queries.insert_session.execute(self.session, **_new(session))
        await queries.insert_refresh_token.execute(self.session, **_new(token))

    async def add_refresh_token(self, row: Mapping[str, Any]) -> None:
        await _queries().insert_refresh_token.execute(self.session, **_new(row))

    async def spend(self, token_id: str, replaced_by: str, now: datetime) -> bool:
        """Mark the refresh token used, if nobody has yet; True for the one caller that did.

        One conditional UPDATE, so of two concurrent refreshes with the same token exactly
        one changes the row (PostgreSQL re-checks the condition after the other commits;
        SQLite's writers are serialised).
        """
        changed = await _queries().spend.execute(
            self.session, token_id=token_id, replaced_by=replaced_by, now=now
        )
        return changed == 1

    async def touch(self, session_id: str, now: datetime) -> None:
        await _queries().touch.execute(self.session, session_id=session_id, now=now)

    # Mailed single-use tokens (password reset, email verification)

    async def action_token(self, token_hash: str, purpose: str) -> ActionToken | None:
        stmt = select(ActionToken).where(
            col(ActionToken.token_hash) == token_hash, col(ActionToken.purpose) == purpose
        )
        return (await self.session.exec(stmt)).first()

    async def spend_action_token(self, token_id: str, now: datetime) -> bool:
        """Use the token once; True for the one caller that did (as `spend`)."""
        result: CursorResult[tuple[()]] = await self.session.exec(  # type: ignore[call-overload]
            update(ActionToken)
            .where(col(ActionToken.id) == token_id, col(ActionToken.used_at).is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1


def _stored(fields: Mapping[str, Any] | None) -> StoredCredential | None:
    return StoredCredential(**fields) if fields is not None else None


def revoked_sessions_loader(database: Database) -> Callable[[datetime], Awaitable[list[str]]]:
    """What `RevokedSessions` reloads with: recent revocations, read from the primary."""

    async def load(since: datetime) -> list[str]:
        async with database.primary_read_sessions() as session:
            return list(await AuthRepository(session).revoked_since(since))

    return load
