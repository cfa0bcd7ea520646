"""The `notes_note`, `notes_tag` and `notes_owner` tables. Private to the plugin: others
see `api.Note`."""

from sqlalchemy import Column, ForeignKey, Index, String, Text
from sqlmodel import Field

from core.db import Entity, Model, id_field
from core.db.ids import ID_MAX_LENGTH
from plugins.user.api import USER_ID_FK, USER_ID_LENGTH

from courtyard_notes.api import NOTE_ID_PREFIX, TAG_MAX_LENGTH, TITLE_MAX_LENGTH

# `hidden_by` of the notes hidden because their owner's account was deleted: they come
# back when it is restored. A note its owner deleted has no `hidden_by` and stays deleted.
HIDDEN_WITH_OWNER = "user_deleted"
HIDDEN_BY_MAX_LENGTH = 32


class NoteRecord(Entity, table=True):
    """A note. Soft-deleted (`deleted_at`), never removed, unless its user row is.

    `hidden_by` says why a deleted note was deleted when something other than its owner
    did it (`HIDDEN_WITH_OWNER`); None for a live note or one its owner deleted.
    """

    __tablename__ = "notes_note"
    # A user's notes, newest first: the list query's filter and order in one index.
    __table_args__ = (Index("ix_notes_note_owner_id_id", "owner_id", "id"),)

    id: str = id_field(NOTE_ID_PREFIX)
    owner_id: str = Field(
        sa_column=Column(
            String(USER_ID_LENGTH), ForeignKey(USER_ID_FK, ondelete="CASCADE"), nullable=False
        )
    )
    title: str = Field(max_length=TITLE_MAX_LENGTH, sa_type=String(TITLE_MAX_LENGTH))
    body: str = Field(default="", sa_type=Text)
    hidden_by: str | None = Field(
        default=None, max_length=HIDDEN_BY_MAX_LENGTH, sa_type=String(HIDDEN_BY_MAX_LENGTH)
    )


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


class NoteOwner(Model, table=True):
    """How many live notes one user has: the counter every note creation claims a slot on,
    in one conditional UPDATE that also row-locks it (`NoteRepository.take_slot`), so
    concurrent creations cannot pass the per-user limit. Kept in step, in the same
    transaction, by every change to the number of live notes."""

    __tablename__ = "notes_owner"

    owner_id: str = Field(
        sa_column=Column(
            String(USER_ID_LENGTH), ForeignKey(USER_ID_FK, ondelete="CASCADE"), primary_key=True
        )
    )
    live: int = 0
