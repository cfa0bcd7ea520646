"""Every query on the `user` table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, or_
from sqlmodel import col, select

from core.db import (
    BaseRepository,
    CoreStatement,
    Database,
    Slice,
    StatementTarget,
    is_valid_id,
)
from plugins.user.api import EMAIL_MAX_LENGTH, USER_ID_PREFIX, User
from plugins.user.models import UserRecord, email_key
from plugins.user.schemas import UserFilter, has_control_characters


@dataclass(frozen=True, slots=True)
class _AccountStatements:
    active: CoreStatement
    held_active: CoreStatement
    live: CoreStatement
    live_by_email: CoreStatement


@cache
def _account_statements() -> _AccountStatements:
    """Built once: building a `select()` costs more than running it."""
    columns = [column for column in UserRecord.__table__.c]  # type: ignore[attr-defined]
    live = select(*columns).where(col(UserRecord.deleted_at).is_(None))
    active = live.where(
        col(UserRecord.id) == bindparam("user_id"), col(UserRecord.is_active).is_(True)
    )
    return _AccountStatements(
        active=CoreStatement(active),
        held_active=CoreStatement(active.with_for_update(read=True)),
        live=CoreStatement(live.where(col(UserRecord.id) == bindparam("user_id"))),
        live_by_email=CoreStatement(
            live.where(col(UserRecord.email_key) == bindparam("email_key"))
        ),
    )


class AccountRows:
    """The account reads of every sign-in and every authenticated request, as Core
    statements on `target`: a session (the caller's unit of work) or, for the per-request
    check, the primary's engine (no session, one pooled connection for one statement).

    Every method takes what a caller may pass unchecked (a malformed id, an over-long
    email) and answers None for it without asking the database.
    """

    def __init__(self, target: StatementTarget) -> None:
        self.target = target

    async def active(self, user_id: str) -> User | None:
        return await self._one(_account_statements().active, user_id)

    async def hold_active(self, user_id: str) -> User | None:
        """The live, active account, FOR SHARE (PostgreSQL): a change committed meanwhile is
        seen (the row is read again once locked), one that comes later waits for the
        caller's transaction. SQLite's writers are serialised already."""
        return await self._one(_account_statements().held_active, user_id)

    async def live(self, user_id: str) -> User | None:
        return await self._one(_account_statements().live, user_id)

    async def live_by_email(self, email: str) -> User | None:
        if len(email) > EMAIL_MAX_LENGTH or has_control_characters(email):
            return None  # never stored, so no need to ask
        found = await _account_statements().live_by_email.first(
            self.target, email_key=email_key(email)
        )
        return _user(found)

    async def _one(self, statement: CoreStatement, user_id: str) -> User | None:
        if not is_valid_id(user_id, USER_ID_PREFIX):
            return None
        return _user(await statement.first(self.target, user_id=user_id))


class PrimaryAccounts:
    """Implements `api.AccountReader`: the per-request account check, on the primary."""

    def __init__(self, database: Database) -> None:
        self.rows = AccountRows(database.primary_read_engine)

    async def active(self, user_id: str) -> User | None:
        return await self.rows.active(user_id)


def _user(fields: Mapping[str, Any] | None) -> User | None:
    return User.model_validate(fields) if fields is not None else None


class UserRepository(BaseRepository[UserRecord]):
    model = UserRecord

    async def get_by_email(self, email: str) -> UserRecord | None:
        """The live user with `email`, compared case-insensitively (the unique index's rule)."""
        stmt = self.select().where(col(UserRecord.email_key) == email_key(email))
        return (await self.session.exec(stmt)).first()

    async def get_for_update(
        self, user_id: str, *, include_deleted: bool = False
    ) -> UserRecord | None:
        """The user, row-locked until the transaction ends (PostgreSQL; SQLite's writers are
        serialised already), so a change is decided on the row as it is now."""
        record = await self.session.get(UserRecord, user_id, with_for_update=True)
        if record is None or (record.deleted_at is not None and not include_deleted):
            return None
        return record

    async def search(
        self, where: UserFilter, *, limit: int, cursor: str | None = None
    ) -> Slice[UserRecord]:
        return await self.list(
            limit=limit,
            cursor=cursor,
            include_deleted=where.include_deleted,
            where=_conditions(where),
        )

    async def count_live(self, *, created_since: datetime | None = None) -> int:
        """How many live users there are (created at or after `created_since`, when given):
        one query, answered from the index `ix_user_deleted_at_created_at`."""
        live = col(UserRecord.deleted_at).is_(None)
        stmt = select(func.count()).select_from(UserRecord).where(live)
        if created_since is not None:
            stmt = stmt.where(col(UserRecord.created_at) >= created_since)
        return (await self.session.exec(stmt)).one()

    async def lock_active_admins(self) -> list[str]:
        """Ids of the live, active admins, row-locked until the transaction ends.

        Two admins demoting each other at once serialise here, so one of them always
        remains (PostgreSQL; SQLite serialises all writers anyway). On PostgreSQL every
        admin-changing transaction first takes one advisory lock: row locks alone, even in
        id order, can deadlock (a row skipped because a concurrent demotion changed it is
        locked later, out of order, as the target).
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.exec(
                select(func.pg_advisory_xact_lock(func.hashtext("user.admins")))
            )
        stmt = (
            select(UserRecord.id)
            .where(
                col(UserRecord.role) == "admin",
                col(UserRecord.is_active).is_(True),
                col(UserRecord.deleted_at).is_(None),
            )
            .order_by(col(UserRecord.id))
            .with_for_update()
        )
        return list((await self.session.exec(stmt)).all())


def _conditions(where: UserFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.q:
        conditions.append(
            or_(
                col(UserRecord.email_key).startswith(email_key(where.q), autoescape=True),
                col(UserRecord.name).icontains(where.q, autoescape=True),
            )
        )
    if where.role is not None:
        conditions.append(col(UserRecord.role) == where.role)
    if where.is_active is not None:
        conditions.append(col(UserRecord.is_active).is_(where.is_active))
    return conditions
