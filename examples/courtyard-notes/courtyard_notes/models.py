"""The `notes_note` and `notes_tag` tables. Private to the plugin: others see `api.Note`."""

from sqlalchemy import Column, ForeignKey, Index, String, Text
from sqlmodel import Field

from core.db import Entity, Model, id_field
from core.db.ids import ID_MAX_LENGTH

from courtyard_notes.api import NOTE_ID_PREFIX, TAG_MAX_LENGTH, TITLE_MAX_LENGTH


class NoteRecord(Entity, table=True):
    """A note. Soft-deleted (`deleted_at`), never removed, unless its user row is."""

    __tablename__ = "notes_note"
    # A user's notes, newest first: the list query's filter and order in one index.
    __table_args__ = (Index("ix_notes_note_owner_id_id", "owner_id", "id"),)

    id: str = id_field(NOTE_ID_PREFIX)
    owner_id: str = Field(
        sa_column=Column(
            String(ID_MAX_LENGTH), ForeignKey("user.id", ondelete="CASCADE"), nullable=False
        )
    )
    title: str = Field(max_length=TITLE_MAX_LENGTH, sa_type=String(TITLE_MAX_LENGTH))
    body: str = Field(default="", sa_type=Text)


class NoteTag(Model, table=True):
    """One tag of one note: a row per tag, so `?tag=` is an indexed lookup on any database."""

    __tablename__ = "notes_tag"

    note_id: str = Field(
        sa_column=Column(
            String(ID_MAX_LENGTH),
            ForeignKey("notes_note.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    tag: str = Field(
        primary_key=True,
        max_length=TAG_MAX_LENGTH,
        sa_type=String(TAG_MAX_LENGTH),
        index=True,
    )
