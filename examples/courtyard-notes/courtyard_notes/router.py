"""`/api/v1/notes`: the caller's own notes. Anyone else's note is a 404, never a 403.

No `from __future__ import annotations` here: FastAPI must see the route signatures'
types, and `Notes` is local to `build_router`. Routes take no session: each service call
is a unit of work of its own.
"""

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from aiodataloader import DataLoader
from fastapi import APIRouter, Depends, Query, Response

from core.db import Page, PageParams, page_params
from core.errors import problem_responses
from core.identity import CurrentPrincipal

from courtyard_notes.api import TAG_MAX_LENGTH, Author, ListedNote, Note
from courtyard_notes.schemas import TAG_PATTERN, NoteCreate, NoteUpdate, normalize_tag
from courtyard_notes.service import NoteService


async def tag_filter(
    tag: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=TAG_MAX_LENGTH,
            pattern=TAG_PATTERN,
            description="Only notes with this tag (case does not matter).",
        ),
    ] = None,
) -> str | None:
    return None if tag is None else normalize_tag(tag)


async def with_author(note: Note, authors: DataLoader[str, Author | None]) -> ListedNote:
    """`note` as a listing shows it. Written for one note, yet a page of them costs one
    query: the loads of one tick are one call of the loader's batch function."""
    return ListedNote(**note.model_dump(), author=await authors.load(note.owner_id))


async def listed(
    notes: Sequence[Note], authors: DataLoader[str, Author | None]
) -> list[ListedNote]:
    """`notes` as a listing shows them, all at once (`gather`): one query for the authors
    of the whole page, however many wrote it."""
    return list(await asyncio.gather(*(with_author(note, authors) for note in notes)))


def build_router(container: Any) -> APIRouter:
    router = APIRouter()

    async def notes() -> NoteService:
        return container.service()  # type: ignore[no-any-return]

    Notes = Annotated[NoteService, Depends(notes)]

    async def author_loader(notes: Notes) -> DataLoader[str, Author | None]:
        """A loader for this request only: FastAPI calls a dependency once per request, so
        what it caches never outlives the request nor reaches another caller."""
        return DataLoader(notes.authors)

    Authors = Annotated[DataLoader[str, Author | None], Depends(author_loader)]

    @router.get("", response_model=Page[ListedNote], responses=problem_responses(401))
    async def list_notes(
        principal: CurrentPrincipal,
        notes: Notes,
        authors: Authors,
        page: Annotated[PageParams, Depends(page_params)],
        tag: Annotated[str | None, Depends(tag_filter)],
    ) -> Page[ListedNote]:
        """Your notes, newest first, a page at a time (`?cursor=` continues), each with its
        author's id and name."""
        found = await notes.list_notes(principal.user_id, page, tag=tag)
        items = await listed(found.items, authors)
        return Page[ListedNote](items=items, next_cursor=found.next_cursor)

    @router.post("", status_code=201, response_model=Note, responses=problem_responses(401, 409))
    async def create_note(data: NoteCreate, principal: CurrentPrincipal, notes: Notes) -> Note:
        """Write a note; 409 `notes.limit_reached` once you have the most a user may keep."""
        return await notes.create(principal.user_id, data)

    @router.get("/{note_id}", response_model=Note, responses=problem_responses(401, 404))
    async def read_note(note_id: str, principal: CurrentPrincipal, notes: Notes) -> Note:
        """One of your notes (404 for a note that is not yours, or deleted)."""
        return await notes.get(principal.user_id, note_id)

    @router.patch("/{note_id}", response_model=Note, responses=problem_responses(401, 404))
    async def update_note(
        note_id: str, data: NoteUpdate, principal: CurrentPrincipal, notes: Notes
    ) -> Note:
        """Change a note's title, body or tags (`tags` replaces them all)."""
        return await notes.update(principal.user_id, note_id, data.changes())

    @router.delete("/{note_id}", status_code=204, responses=problem_responses(401, 404))
    async def delete_note(note_id: str, principal: CurrentPrincipal, notes: Notes) -> Response:
        """Delete a note (a soft delete: it is gone from the API, the row is kept)."""
        await notes.delete(principal.user_id, note_id)
        return Response(status_code=204)

    return router
