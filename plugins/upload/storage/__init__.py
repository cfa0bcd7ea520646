"""Where upload bytes live. The service speaks only to `StorageBackend`; `open_storage`
picks the implementation that `COURTYARD_UPLOAD__BACKEND` names."""

from plugins.upload.storage.base import (
    AlreadyStored,
    IncompleteUpload,
    ObjectRef,
    StorageBackend,
    StorageUnavailable,
    StoredObject,
    TooLarge,
    UploadTarget,
)
from plugins.upload.storage.factory import open_storage

__all__ = [
    "AlreadyStored",
    "IncompleteUpload",
    "ObjectRef",
    "StorageBackend",
    "StorageUnavailable",
    "StoredObject",
    "TooLarge",
    "UploadTarget",
    "open_storage",
]
