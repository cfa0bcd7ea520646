"""Domain rules for notes: only the owner sees a note, a per-user limit, soft delete, events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from core.db import Database, Page, PageParams, is_valid_id
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.hooks import emit
from plugins.user.api import UserDirectory

from courtyard_notes.api import NOTE_ID_PREFIX, Author, Note
from courtyard_notes.models import NoteRecord
from courtyard_notes.repository import NoteRepository, OwnerCount
from courtyard_notes.schemas import NoteCreate
from courtyard_notes.settings import NotesSettings


def to_note(record: NoteRecord, tags: Sequence[str]) -> Note:
    return Note(
        id=record.id,
        owner_id=record.owner_id,
        title=record.title,
        body=record.body,
        tags=list(tags),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class NoteService:
    """Everything that can happen to a note, each call one unit of work of its own: a read
    opens a read session (on the replica, when one is configured), a change opens a
    transaction on the primary and commits it here (its event fires then).

    Every method takes the acting user's id: a note someone else owns is answered exactly
    like one that does not exist (404), so ids cannot be probed.
    """

    def __init__(
        self,
        database: Database,
        settings: NotesSettings,
        hooks: Any,
        users: Callable[..., UserDirectory],
    ) -> None:
        self.database = database
        self.settings = settings
        self.hooks = hooks
        self.users = users  # the user plugin's directory: `self.users(session=session)`

    # Reads

    async def list_notes(
        self, owner_id: str, page: PageParams, *, tag: str | None = None
    ) -> Page[Note]:
        async with self.database.read_sessions() as session:
            notes = NoteRepository(session)
            rows = await notes.page_of(owner_id, limit=page.limit, cursor=page.cursor, tag=tag)
            tags = await notes.tags_of(r.id for r in rows.items)  # one query for the page
            return Page[Note].of(rows, lambda r: to_note(r, tags.get(r.id, [])))

    async def get(self, owner_id: str, note_id: str) -> Note:
        async with self.database.read_sessions() as session:
            notes = NoteRepository(session)
            record = await self._owned(notes, owner_id, note_id)
            return to_note(record, await self._tags(notes, record))

    async def authors(self, user_ids: list[str]) -> list[Author | None]:
        """The author of each note owner in `user_ids`, in that order (None for an account
        that is gone): one query for all of them, the batch function of the listing's
        `DataLoader`."""
        async with self.database.read_sessions() as session:
            found = await self.users(session=session).get_many(user_ids)
        return [
            Author(id=user.id, name=user.name) if (user := found.get(i)) else None for i in user_ids
        ]

    async def counts_by_owner(self) -> list[OwnerCount]:
        """Live and deleted notes per owner. A read session runs no transaction, so this
        never waits for the app's writers."""
        async with self.database.read_sessions() as session:
            return await NoteRepository(session).counts_by_owner()

    # Changes

    async def create(self, owner_id: str, data: NoteCreate) -> Note:
        """A new note; 409 `notes.limit_reached` when the owner has `max_per_user` already.

        The limit holds under concurrency: the owner's counter row is claimed first, in one
        conditional UPDATE that locks it until the commit (see `NoteRepository.take_slot`).
        """
        self._check_body(data.body)
        async with self.database.write_sessions() as session:
            notes = NoteRepository(session)
            limit = self.settings.max_per_user
            if not await notes.take_slot(owner_id, limit):
                raise ConflictError(
                    f"You have reached the limit of {limit} notes; delete some to add more",
                    code="notes.limit_reached",
                )
            record = await notes.create(
                NoteRecord(owner_id=owner_id, title=data.title, body=data.body)
            )
            await notes.set_tags(record.id, data.tags)
            note = to_note(record, data.tags)
            session.after_commit(partial(emit, self.hooks.note_created, note=note))
            await session.commit()  # `note_created` fires now
            return note

    async def update(self, owner_id: str, note_id: str, changes: dict[str, Any]) -> Note:
        """Apply `changes` (field → new value; `tags` replaces them all)."""
        if "body" in changes:
            self._check_body(changes["body"])
        async with self.database.write_sessions() as session:
            notes = NoteRepository(session)
            record = await self._owned(notes, owner_id, note_id, for_update=True)
            current = await self._tags(notes, record)
            tags: list[str] | None = changes.get("tags")  # None: keep them
            fields = {k: v for k, v in changes.items() if k != "tags" and getattr(record, k) != v}
            retag = tags is not None and tags != current
            if not fields and not retag:
                return to_note(record, current)  # nothing to commit
            await notes.update(record, fields)  # also moves `updated_at`
            if tags is not None and retag:
                await notes.set_tags(record.id, tags)
                current = tags
            await session.commit()
            return to_note(record, current)

    async def delete(self, owner_id: str, note_id: str) -> None:
        """Soft delete: the note disappears from the API; the row stays."""
        async with self.database.write_sessions() as session:
            notes = NoteRepository(session)
            await notes.soft_delete(await self._owned(notes, owner_id, note_id, for_update=True))
            await notes.count_live_change(owner_id, -1)
            await session.commit()

    async def hide_all_of(self, owner_id: str) -> int:
        """Hide every live note of a user whose account was deleted (a soft delete marked
        as such, so that `unhide_all_of` can tell them from notes the user deleted); how
        many."""
        async with self.database.write_sessions() as session:
            notes = NoteRepository(session)
            count = await notes.hide_all_of(owner_id)
            await notes.count_live_change(owner_id, -count)
            await session.commit()
            return count

    async def unhide_all_of(self, owner_id: str) -> int:
        """Bring back the notes hidden when the user's account was deleted, and only those;
        how many."""
        async with self.database.write_sessions() as session:
            notes = NoteRepository(session)
            count = await notes.unhide_all_of(owner_id)
            await notes.count_live_change(owner_id, count)
            await session.commit()
            return count

    # Rules, in the caller's unit of work

    async def _owned(
        self, notes: NoteRepository, owner_id: str, note_id: str, *, for_update: bool = False
    ) -> NoteRecord:
        record = None
        if is_valid_id(note_id, NOTE_ID_PREFIX):
            record = await notes.owned(note_id, owner_id, for_update=for_update)
        if record is None:
            raise NotFoundError(f"Note {note_id} not found", code="notes.not_found")
        return record

    async def _tags(self, notes: NoteRepository, record: NoteRecord) -> list[str]:
        return (await notes.tags_of([record.id])).get(record.id, [])

    def _check_body(self, body: str) -> None:
        """The configured body limit (the schema only knows the hard maximum)."""
        limit = self.settings.max_body_length
        if len(body) > limit:
            raise InvalidInputError(
                "body", f"String should have at most {limit} characters", kind="string_too_long"
            )
