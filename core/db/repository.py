"""`BaseRepository[T]`: the queries every entity needs, with soft delete and cursor pages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.db.model import Entity, utcnow

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True, slots=True)
class Slice(Generic[E]):
    """One page of rows, newest first, and the cursor that continues after it."""

    items: list[E]
    next_cursor: str | None


class BaseRepository(Generic[E]):
    """CRUD for one entity. Soft-deleted rows are hidden unless `include_deleted=True`.

    Lists are ordered by id, newest first (ids are ULIDs), and continue with `cursor` = the
    last id seen, so pages never overlap or skip rows, even while rows are being inserted.
    """

    model: ClassVar[type[Entity]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _id_column(self) -> Any:
        return col(self.model.id)  # type: ignore[attr-defined]

    def select(self, *, include_deleted: bool = False) -> SelectOfScalar[E]:
        stmt = select(self.model)
        if not include_deleted:
            stmt = stmt.where(col(self.model.deleted_at).is_(None))
        return stmt  # type: ignore[return-value]

    async def get(self, entity_id: str, *, include_deleted: bool = False) -> E | None:
        entity = await self.session.get(self.model, entity_id)
        if entity is None or (entity.deleted_at is not None and not include_deleted):
            return None
        return entity  # type: ignore[return-value]

    async def list(
        self,
        *,
        limit: int = 20,
        cursor: str | None = None,
        include_deleted: bool = False,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> Slice[E]:
        id_column = self._id_column()
        stmt = self.select(include_deleted=include_deleted)
        for condition in where:
            stmt = stmt.where(condition)
        if cursor is not None:
            stmt = stmt.where(id_column < cursor)
        rows = list(
            (await self.session.exec(stmt.order_by(id_column.desc()).limit(limit + 1))).all()
        )
        has_more = len(rows) > limit
        items = rows[:limit]
        return Slice(items=items, next_cursor=items[-1].id if has_more else None)  # type: ignore[attr-defined]

    async def create(self, entity: E) -> E:
        self.session.add(entity)
        await self.session.flush()
        return entity

    async def update(self, entity: E, changes: Mapping[str, Any]) -> E:
        for field, value in changes.items():
            setattr(entity, field, value)
        entity.updated_at = utcnow()
        self.session.add(entity)
        await self.session.flush()
        return entity

    async def soft_delete(self, entity: E) -> E:
        now = utcnow()
        entity.deleted_at = now
        entity.updated_at = now
        self.session.add(entity)
        await self.session.flush()
        return entity

    async def restore(self, entity: E) -> E:
        entity.deleted_at = None
        entity.updated_at = utcnow()
        self.session.add(entity)
        await self.session.flush()
        return entity
