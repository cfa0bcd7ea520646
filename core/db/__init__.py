"""Database access for plugins: engines, sessions, the base model and repository, ids."""

from core.db.engine import Database
from core.db.ids import ID_PATTERN, is_valid_id, new_id
from core.db.model import Entity, Model, UTCDateTime, id_field, metadata, utcnow
from core.db.pagination import Page, PageParams, page_params
from core.db.repository import BaseRepository, Slice
from core.db.statement import CoreStatement, StatementTarget, dialect_of
from core.db.unit_of_work import AppSession

__all__ = [
    "ID_PATTERN",
    "AppSession",
    "BaseRepository",
    "CoreStatement",
    "Database",
    "Entity",
    "Model",
    "Page",
    "PageParams",
    "Slice",
    "StatementTarget",
    "UTCDateTime",
    "dialect_of",
    "id_field",
    "is_valid_id",
    "metadata",
    "new_id",
    "page_params",
    "utcnow",
]
