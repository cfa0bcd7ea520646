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
from pydantic.config import JsonDict

from plugins.upload.filenames import clean_filename
from plugins.upload.models import CONTENT_TYPE_MAX_LENGTH

Status = Literal["pending", "ready"]
SIZE_MAX = 2**63 - 1  # the size column is a signed 64-bit integer
RAW_FILENAME_MAX_LENGTH = 1024  # longer names are refused; shorter ones are cleaned and capped
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# What is accepted before it is trimmed and lower-cased, as the OpenAPI document states it.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"  # a type or subtype (RFC 6838)
CONTENT_TYPE_PATTERN = rf"^[ \t]*{_NAME}/{_NAME}[ \t]*$"

# What the documentation shows: a file once sent (local storage), and one just granted.
_UPLOAD_ID = "upl_01JP9ZTDNTFMP0QXBHATHT00S6"
_CONTENT_URL = f"https://api.example.com/api/v1/uploads/{_UPLOAD_ID}/content"
_GRANTED_AT = "2025-03-14T09:30:00.250000Z"
_SENT_AT = "2025-03-14T09:30:04.918000Z"
_URL_EXPIRES_AT = "2025-03-14T10:30:00.250000Z"
# An upload in a grant is pending: what is not known yet is left out.
PENDING_EXAMPLE: JsonDict = {
    "id": _UPLOAD_ID,
    "owner_id": "usr_01JP9ZMQCNR1TMCDJNVSVQHRET",
    "filename": "report.pdf",
    "content_type": "application/pdf",
    "size": 48213,
    "status": "pending",
    "created_at": _GRANTED_AT,
    "updated_at": _GRANTED_AT,
    "expires_at": _URL_EXPIRES_AT,
}


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

    filename: Filename = Field(
        description="The file's name as the user knows it.", examples=["report.pdf"]
    )
    content_type: ContentType = Field(
        description="The file's media type, e.g. image/png.", examples=["application/pdf"]
    )
    size: StrictInt = Field(
        ge=0, le=SIZE_MAX, description="The file's exact size in bytes.", examples=[48213]
    )


class Upload(BaseModel):
    """An upload as its owner (or an admin) sees it."""

    id: str = Field(examples=[_UPLOAD_ID])
    owner_id: str = Field(examples=["usr_01JP9ZMQCNR1TMCDJNVSVQHRET"])
    filename: str = Field(examples=["report.pdf"])
    content_type: str = Field(examples=["application/pdf"])
    size: int = Field(examples=[48213])
    status: Status = Field(examples=["ready"])
    sha256: str | None = Field(
        None,
        description="SHA-256 of the content, when computed.",
        examples=["0957bdf3d5f80717555299483d807254887b9523f9ae3fe07968a67172172bcc"],
    )
    created_at: datetime = Field(examples=[_GRANTED_AT])
    updated_at: datetime = Field(examples=[_SENT_AT])
    completed_at: datetime | None = Field(None, examples=[_SENT_AT])
    expires_at: datetime | None = Field(
        None,
        description="A pending upload is removed if not completed by then.",
        examples=[None],
    )
    download_url: str | None = Field(
        None,
        description="A short-lived URL to download a ready file (GET of one upload).",
        examples=[
            f"{_CONTENT_URL}?expires=1741953125"
            "&signature=2998b3232d29e8dc5a78d97a32ce83f556f3ed31b057077503df05641dd79158"
        ],
    )
    download_expires_at: datetime | None = Field(None, examples=["2025-03-14T11:52:05Z"])


class UploadGrant(BaseModel):
    """How to send the bytes: `method` to `url` before `expires_at`. For POST, send a
    multipart form with every entry of `fields` and then the file as `file`; for PUT, send
    the raw bytes with `headers`. Then call `POST /uploads/{id}/complete`."""

    upload: Upload = Field(examples=[PENDING_EXAMPLE])
    url: str = Field(
        examples=[
            f"{_CONTENT_URL}?expires=1741948200"
            "&signature=373cb2c6d4fe2778441d4f0266505b699fa518d002e5793b87f9b48836de3f62"
        ]
    )
    method: Literal["PUT", "POST"] = Field(examples=["PUT"])
    fields: dict[str, str] = Field(examples=[{}])
    headers: dict[str, str] = Field(examples=[{"Content-Type": "application/pdf"}])
    expires_at: datetime = Field(examples=[_URL_EXPIRES_AT])


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
