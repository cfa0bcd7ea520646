"""What the HTTP API accepts and returns, and what the service hands its other callers.

These are the plugin's data transfer objects: `UploadService` returns them (or plain
values), never an `UploadRecord`, which stays between the service and the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from plugins.upload.filenames import clean_filename
from plugins.upload.models import CONTENT_TYPE_MAX_LENGTH

Status = Literal["pending", "ready"]
SIZE_MAX = 2**63 - 1  # the size column is a signed 64-bit integer
RAW_FILENAME_MAX_LENGTH = 1024  # longer names are refused; shorter ones are cleaned and capped
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# What is accepted before it is trimmed and lower-cased, as the OpenAPI document states it.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"  # a type or subtype (RFC 6838)
CONTENT_TYPE_PATTERN = rf"^[ \t]*{_NAME}/{_NAME}[ \t]*$"


def check_content_type(value: str) -> str:
    """A bare media type (`image/png`), lower-cased; parameters (`; charset=`) are refused so
    the type stored, signed and sent back is one exact string."""
    value = value.strip().lower()
    if not _MEDIA_TYPE.fullmatch(value):
        raise ValueError("must be a media type such as 'image/png', without parameters")
    return value


ContentType = Annotated[
    StrictStr,
    Field(max_length=CONTENT_TYPE_MAX_LENGTH, pattern=CONTENT_TYPE_PATTERN),
    AfterValidator(check_content_type),
]
Filename = Annotated[
    StrictStr,
    Field(min_length=1, max_length=RAW_FILENAME_MAX_LENGTH),
    AfterValidator(clean_filename),
]


class UploadCreate(BaseModel):
    """A request to upload one file. The filename is kept as metadata only, cleaned."""

    model_config = ConfigDict(extra="forbid")

    filename: Filename = Field(description="The file's name as the user knows it.")
    content_type: ContentType = Field(description="The file's media type, e.g. image/png.")
    size: StrictInt = Field(ge=0, le=SIZE_MAX, description="The file's exact size in bytes.")


class Upload(BaseModel):
    """An upload as its owner (or an admin) sees it."""

    id: str
    owner_id: str
    filename: str
    content_type: str
    size: int
    status: Status
    sha256: str | None = Field(None, description="SHA-256 of the content, when computed.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = Field(
        None, description="A pending upload is removed if not completed by then."
    )
    download_url: str | None = Field(
        None, description="A short-lived URL to download a ready file (GET of one upload)."
    )
    download_expires_at: datetime | None = None


class UploadGrant(BaseModel):
    """How to send the bytes: `method` to `url` before `expires_at`. For POST, send a
    multipart form with every entry of `fields` and then the file as `file`; for PUT, send
    the raw bytes with `headers`. Then call `POST /uploads/{id}/complete`."""

    upload: Upload
    url: str
    method: Literal["PUT", "POST"]
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge removed: how many uploads, and their declared bytes."""

    uploads: int
    bytes: int


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A ready upload's file on local disk, as its signed download serves it."""

    path: Path
    content_type: str
    filename: str
