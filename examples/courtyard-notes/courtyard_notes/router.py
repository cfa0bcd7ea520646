"""`/api/v1/notes`: the caller's own notes. Anyone else's note is a 404, never a 403.

No `from __future__ import annotations` here: FastAPI must see the route signatures'
types, and `Notes` is local to `build_router`. Routes take no session: each service call
is a unit of work of its own.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from core.db import Page, PageParams, page_params
from core.errors import problem_responses
from core.identity import CurrentPrincipal

from courtyard_notes.api import TAG_MAX_LENGTH, Note
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


def build_router(container: Any) -> APIRouter:
    router = APIRouter()

    async def notes() -> NoteService:
        return container.service()  # type: ignore[no-any-return]

    Notes = Annotated[NoteService, Depends(notes)]

    @router.get("", response_model=Page[Note], responses=problem_responses(401))
    async def list_notes(
        principal: CurrentPrincipal,
        notes: Notes,
        page: Annotated[PageParams, Depends(page_params)],
        tag: Annotated[str | None, Depends(tag_filter)],
    ) -> Page[Note]:
        """Your notes, newest first, a page at a time (`?cursor=` continues)."""
        return await notes.list_notes(principal.user_id, page, tag=tag)

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
