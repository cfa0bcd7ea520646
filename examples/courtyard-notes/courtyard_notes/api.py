"""The `notes` plugin's public surface: what listeners of its events, and any plugin that
lists `"notes"` in its `requires`, may import. Everything else in the package is private.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

NOTE_ID_PREFIX = "nte"
TITLE_MAX_LENGTH = 200
BODY_MAX_LENGTH = 100_000  # the most any deployment may allow (`COURTYARD_NOTES__MAX_BODY_LENGTH`)
TAG_MAX_LENGTH = 32
MAX_TAGS = 20


class Note(BaseModel):
    """A note as its owner, the API and the `note_created` listeners see it.

    `tags` are lower-case, unique and sorted.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    owner_id: str
    title: str
    body: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class Author(BaseModel):
    """Who wrote a note, as a listing shows them: the user's id and display name."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class ListedNote(Note):
    """A note in a listing, with its author (None if the account is gone meanwhile)."""

    author: Author | None
