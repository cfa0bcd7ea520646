"""Every query on the `user` table."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_
from sqlmodel import col, select

from core.db import BaseRepository, Slice
from plugins.user.models import UserRecord, email_key
from plugins.user.schemas import UserFilter


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
        remains (PostgreSQL; SQLite serialises all writers anyway). Taken before any other
        user row is locked, always in id order, so two such changes cannot deadlock.
        """
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
