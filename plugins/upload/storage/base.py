"""The storage protocol and the errors every backend raises."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.errors import ServiceUnavailableError

# Builds the absolute URL of the plugin's own content endpoint for an upload id (the
# `local` backend sends clients there; S3 does not need it).
ContentUrl = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object and what its upload declared: the facts a grant or check is about."""

    upload_id: str
    key: str
    size: int
    content_type: str
    filename: str = ""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What storage holds at a key: its size, and its content type where storage keeps one."""

    size: int
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """How a client sends the bytes: `method` to `url` with these form `fields` (POST) or
    these `headers` (PUT), before `expires_at`."""

    url: str
    method: str
    expires_at: datetime
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class StorageUnavailable(ServiceUnavailableError):
    """The storage service cannot be reached or failed; the request may be retried."""

    code = "upload.storage_unavailable"

    def __init__(self, detail: str = "File storage is unavailable; try again shortly") -> None:
        super().__init__(detail)


class TooLarge(Exception):
    """More bytes arrived than the upload declared."""


class IncompleteUpload(Exception):
    """Fewer bytes arrived than the upload declared."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


class AlreadyStored(Exception):
    """The object has been stored already; a grant stores an object once."""


class StorageBackend(Protocol):
    name: str

    async def upload_target(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> UploadTarget:
        """Where and how the client uploads exactly `obj` (its key, size and type)."""
        ...

    async def download_url(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> str:
        """A URL that serves the object as an attachment named `obj.filename` until `expires_at`."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        """What is stored at `key`, or None when there is no object there."""
        ...

    async def read_head(self, key: str, length: int) -> bytes:
        """The object's first `length` bytes (fewer if it is shorter)."""
        ...

    async def sha256(self, key: str) -> str | None:
        """The object's SHA-256 (hex) when the backend can compute it cheaply, else None."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete these objects; keys with no object are fine."""
        ...

    async def check(self) -> None:
        """Raise `core.hookspecs.NotReady` when the storage cannot be used."""
        ...

    async def close(self) -> None:
        """Release connections (the backend may be used again: it reconnects)."""
        ...
