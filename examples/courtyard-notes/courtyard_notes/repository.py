"""Every query on the `notes_*` tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, delete, func, update
from sqlmodel import col, select

from core.db import BaseRepository, Slice, utcnow

from courtyard_notes.models import NoteRecord, NoteTag


@dataclass(frozen=True, slots=True)
class OwnerCount:
    """How many notes one user has: live ones, and soft-deleted ones."""

    owner_id: str
    live: int
    deleted: int


class NoteRepository(BaseRepository[NoteRecord]):
    model = NoteRecord

    async def owned(
        self, note_id: str, owner_id: str, *, for_update: bool = False
    ) -> NoteRecord | None:
        """The live note `note_id` if `owner_id` owns it; with `for_update`, row-locked until
        the transaction ends (PostgreSQL; SQLite's writers are serialised already)."""
        note = await self.session.get(NoteRecord, note_id, with_for_update=for_update)
        if note is None or note.deleted_at is not None or note.owner_id != owner_id:
            return None
        return note

    async def page_of(
        self, owner_id: str, *, limit: int, cursor: str | None, tag: str | None
    ) -> Slice[NoteRecord]:
        """The owner's live notes, newest first, optionally only those tagged `tag`."""
        where: list[ColumnElement[bool]] = [col(NoteRecord.owner_id) == owner_id]
        if tag is not None:
            tagged = select(NoteTag.note_id).where(col(NoteTag.tag) == tag)
            where.append(col(NoteRecord.id).in_(tagged))
        return await self.list(limit=limit, cursor=cursor, where=where)

    async def count_live(self, owner_id: str) -> int:
        stmt = select(func.count()).where(
            col(NoteRecord.owner_id) == owner_id, col(NoteRecord.deleted_at).is_(None)
        )
        return (await self.session.exec(stmt)).one()

    async def lock_owner(self, owner_id: str) -> None:
        """Serialise note creation per owner until the transaction ends, so two concurrent
        creates cannot both pass the per-user limit. PostgreSQL takes a transaction-scoped
        advisory lock; SQLite needs none (every write transaction holds the database lock).
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        key = func.hashtextextended(f"courtyard_notes.owner:{owner_id}", 0)
        await self.session.exec(select(func.pg_advisory_xact_lock(key)))

    async def soft_delete_all_of(self, owner_id: str) -> int:
        """Soft-delete every live note of `owner_id` in one statement; how many."""
        now = utcnow()
        result = await self.session.exec(
            update(NoteRecord)
            .where(col(NoteRecord.owner_id) == owner_id, col(NoteRecord.deleted_at).is_(None))
            .values(deleted_at=now, updated_at=now)
        )
        return int(result.rowcount)

    # Tags

    async def tags_of(self, note_ids: Iterable[str]) -> dict[str, list[str]]:
        """The tags of each note, sorted, in one query (notes without tags are absent)."""
        ids = list(note_ids)
        if not ids:
            return {}
        stmt = (
            select(NoteTag.note_id, NoteTag.tag)
            .where(col(NoteTag.note_id).in_(ids))
            .order_by(col(NoteTag.note_id), col(NoteTag.tag))
        )
        tags: dict[str, list[str]] = {}
        for note_id, tag in await self.session.exec(stmt):
            tags.setdefault(note_id, []).append(tag)
        return tags

    async def set_tags(self, note_id: str, tags: Sequence[str]) -> None:
        """Replace the note's tags with `tags`."""
        await self.session.exec(delete(NoteTag).where(col(NoteTag.note_id) == note_id))
        self.session.add_all([NoteTag(note_id=note_id, tag=tag) for tag in tags])
        await self.session.flush()

    # Statistics

    async def counts_by_owner(self) -> list[OwnerCount]:
        """Live and deleted notes per owner, most live notes first."""
        live = func.sum(case((col(NoteRecord.deleted_at).is_(None), 1), else_=0))
        total = func.count()
        stmt = (
            select(NoteRecord.owner_id, live.label("live"), total.label("total"))
            .group_by(col(NoteRecord.owner_id))
            .order_by(live.desc(), col(NoteRecord.owner_id))
        )
        rows = await self.session.exec(stmt)
        return [OwnerCount(owner, int(n or 0), int(all_ - (n or 0))) for owner, n, all_ in rows]
