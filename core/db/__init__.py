"""Database access for plugins: engines, sessions, the base model and repository, ids."""

from core.db.engine import Database
from core.db.ids import ID_PATTERN, is_valid_id, new_id
from core.db.model import Entity, Model, UTCDateTime, id_field, metadata, utcnow
from core.db.pagination import Page, PageParams, page_params
from core.db.repository import BaseRepository, Slice
from core.db.session import read_session, session, write_session

__all__ = [
    "ID_PATTERN",
    "BaseRepository",
    "Database",
    "Entity",
    "Model",
    "Page",
    "PageParams",
    "Slice",
    "UTCDateTime",
    "id_field",
    "is_valid_id",
    "metadata",
    "new_id",
    "page_params",
    "read_session",
    "session",
    "utcnow",
    "write_session",
]
