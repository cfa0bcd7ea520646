"""Every query on the `user` table."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, or_, text
from sqlmodel import col, select

from core.db import BaseRepository, CoreStatement, Slice
from plugins.user.models import UserRecord, email_key
from plugins.user.schemas import UserFilter


def _account_columns() -> list[Any]:
    return [column for column in UserRecord.__table__.c]  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _AccountStatements:
    """The account reads of every request and every sign-in, as `CoreStatement`s."""

    active: CoreStatement
    live: CoreStatement
    live_by_email: CoreStatement
    # The same selects for other plugins to embed in statements of their own (api.py).
    live_by_email_select: Any
    active_shared_select: Any


@cache
def account_statements() -> _AccountStatements:
    """Built once: building a `select()` costs a third of running it."""
    live = select(*_account_columns()).where(col(UserRecord.deleted_at).is_(None))
    active = live.where(
        col(UserRecord.id) == bindparam("user_id"), col(UserRecord.is_active).is_(True)
    )
    by_email = live.where(col(UserRecord.email_key) == bindparam("email_key"))
    return _AccountStatements(
        active=CoreStatement(active),
        live=CoreStatement(live.where(col(UserRecord.id) == bindparam("user_id"))),
        live_by_email=CoreStatement(by_email),
        live_by_email_select=by_email,
        active_shared_select=active.with_for_update(read=True),
    )


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

    async def lock_active_admins(self) -> list[str]:
        """Ids of the live, active admins, row-locked until the transaction ends.

        Two admins demoting each other at once serialise here, so one of them always
        remains (PostgreSQL; SQLite serialises all writers anyway). On PostgreSQL every
        admin-changing transaction first takes one advisory lock: row locks alone, even in
        id order, can deadlock (a row skipped because a concurrent demotion changed it is
        locked later, out of order, as the target).
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.exec(  # type: ignore[call-overload]
                text("SELECT pg_advisory_xact_lock(hashtext('user.admins'))")
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
