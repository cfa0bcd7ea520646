"""Every query on the `user` table."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_
from sqlmodel import col, select

from core.db import BaseRepository, Slice
from plugins.user.models import UserRecord


@dataclass(frozen=True, slots=True)
class UserFilter:
    """What an admin's user list is narrowed to; None means no constraint."""

    q: str | None = None
    role: str | None = None
    is_active: bool | None = None
    include_deleted: bool = False


class UserRepository(BaseRepository[UserRecord]):
    model = UserRecord

    async def get_by_email(self, email: str) -> UserRecord | None:
        """The live user with `email`, compared case-insensitively (the unique index's rule)."""
        stmt = self.select().where(func.lower(col(UserRecord.email)) == func.lower(email))
        return (await self.session.exec(stmt)).first()

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
        remains (PostgreSQL; SQLite serialises all writers anyway).
        """
        stmt = (
            select(UserRecord.id)
            .where(
                col(UserRecord.role) == "admin",
                col(UserRecord.is_active).is_(True),
                col(UserRecord.deleted_at).is_(None),
            )
            .with_for_update()
        )
        return list((await self.session.exec(stmt)).all())


def _conditions(where: UserFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.q:
        conditions.append(
            or_(
                col(UserRecord.email).istartswith(where.q, autoescape=True),
                col(UserRecord.name).icontains(where.q, autoescape=True),
            )
        )
    if where.role is not None:
        conditions.append(col(UserRecord.role) == where.role)
    if where.is_active is not None:
        conditions.append(col(UserRecord.is_active).is_(where.is_active))
    return conditions
