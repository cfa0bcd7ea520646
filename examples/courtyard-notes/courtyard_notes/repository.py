"""Every query on the `notes_*` tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, delete, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from core.db import BaseRepository, Slice, utcnow

from courtyard_notes.models import HIDDEN_WITH_OWNER, NoteOwner, NoteRecord, NoteTag


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

    async def hide_all_of(self, owner_id: str) -> int:
        """Soft-delete every live note of `owner_id`, marked as hidden with its owner, in
        one statement; how many."""
        now = utcnow()
        result = await self.session.exec(
            update(NoteRecord)
            .where(col(NoteRecord.owner_id) == owner_id, col(NoteRecord.deleted_at).is_(None))
            .values(deleted_at=now, updated_at=now, hidden_by=HIDDEN_WITH_OWNER)
        )
        return int(result.rowcount)

    async def unhide_all_of(self, owner_id: str) -> int:
        """Bring back the notes of `owner_id` hidden with its owner (not those the owner
        deleted), in one statement; how many."""
        result = await self.session.exec(
            update(NoteRecord)
            .where(
                col(NoteRecord.owner_id) == owner_id,
                col(NoteRecord.hidden_by) == HIDDEN_WITH_OWNER,
            )
            .values(deleted_at=None, updated_at=utcnow(), hidden_by=None)
        )
        return int(result.rowcount)

    # The per-owner counter of live notes

    async def take_slot(self, owner_id: str, limit: int) -> bool:
        """Count one more live note for `owner_id` if it has fewer than `limit`; whether it
        had. Check and count are one conditional UPDATE of the owner's counter row, which
        keeps the row locked until the transaction ends (PostgreSQL; SQLite serialises
        writers already): a concurrent creation waits there, then sees this one's count.
        """
        if await self._claim(owner_id, limit):
            return True
        await self._add_counter(owner_id)  # the owner's first note since the counter came
        return await self._claim(owner_id, limit)

    async def count_live_change(self, owner_id: str, change: int) -> None:
        """Add `change` (negative for notes deleted) to the owner's count of live notes.

        Relative to the row as it is when locked, never a recount: on PostgreSQL a recount
        in the statement would read the notes as they were when it started, and miss a
        note a concurrent creation committed while this statement waited for the row."""
        if not change:
            return
        live = col(NoteOwner.live)
        await self.session.exec(
            update(NoteOwner).where(col(NoteOwner.owner_id) == owner_id).values(live=live + change)
        )

    async def _claim(self, owner_id: str, limit: int) -> bool:
        live = col(NoteOwner.live)
        result = await self.session.exec(
            update(NoteOwner)
            .where(col(NoteOwner.owner_id) == owner_id, live < limit)
            .values(live=live + 1)
        )
        return int(result.rowcount) == 1

    async def _add_counter(self, owner_id: str) -> None:
        """The owner's counter row, counting the live notes there are, unless a concurrent
        transaction adds it first (then this waits for that one and adds nothing)."""
        live_notes = (
            select(func.count())
            .select_from(NoteRecord)
            .where(col(NoteRecord.owner_id) == owner_id, col(NoteRecord.deleted_at).is_(None))
            .scalar_subquery()
        )
        row = {"owner_id": owner_id, "live": live_notes}
        stmt: postgresql.Insert | sqlite.Insert
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = postgresql.insert(NoteOwner).values(row).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(NoteOwner).values(row).on_conflict_do_nothing()
        await self.session.exec(stmt)

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
