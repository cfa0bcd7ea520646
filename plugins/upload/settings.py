from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from core.extras import require_extra
from core.settings import PluginSettings

MiB = 1024 * 1024
# A media type pattern: `type/subtype`, either part may be `*` ("image/*", "*/*").
_TYPE_PATTERN = re.compile(r"(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class UploadSettings(PluginSettings):
    """`COURTYARD_UPLOAD__*`, or the `[upload]` table of `courtyard.toml`."""

    backend: Literal["local", "s3"] = Field(
        "local", description="Where files are stored: local disk, or an S3-compatible service."
    )
    local_root: Path = Field(
        Path("./var/uploads"), description="The folder the `local` backend stores files in."
    )
    key_prefix: str = Field(
        "uploads",
        description="First segment(s) of every object key: <prefix>/<user id>/<upload id>.",
    )
    max_size: int = Field(25 * MiB, ge=1, description="Largest file accepted, bytes.")
    allowed_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["image/*", "application/pdf", "text/plain"],
        min_length=1,
        description="Content types accepted, as patterns (`image/*`); comma-separated or a "
        "JSON list in the environment.",
    )
    quota_bytes: int = Field(
        1024 * MiB, ge=1, description="Bytes one user may keep (pending and ready uploads)."
    )
    quota_files: int = Field(
        1000, ge=1, description="Files one user may keep (pending and ready uploads)."
    )
    upload_url_ttl: int = Field(
        15 * 60, ge=60, le=7 * 86400, description="Seconds an upload URL stays valid."
    )
    pending_ttl: int = Field(
        24 * 3600,
        ge=60,
        description="Seconds a pending upload may wait for completion before `purge` removes "
        "it (at least `upload_url_ttl`).",
    )
    download_url_ttl: int = Field(
        5 * 60, ge=10, le=7 * 86400, description="Seconds a download URL stays valid."
    )
    purge_interval: int | None = Field(
        None,
        ge=10,
        description="Seconds between purges of expired pending uploads run inside the app; "
        "unset: only `courtyard uploads purge` purges.",
    )
    s3_bucket: str | None = Field(None, description="Bucket name (required for `s3`).")
    s3_region: str = Field("us-east-1", min_length=1, description="The bucket's region.")
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible service; unset: AWS."
    )
    s3_public_endpoint_url: str | None = Field(
        None,
        description="Where browsers reach the S3-compatible service, when not at "
        "s3_endpoint_url: presigned upload and download URLs are made for it. "
        "Unset: s3_endpoint_url.",
    )
    s3_access_key_id: str | None = Field(
        None, description="Access key; unset: the standard AWS credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="Secret for the key.")

    @field_validator("allowed_types", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_types")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        lowered = [pattern.strip().lower() for pattern in patterns]
        for pattern in lowered:
            if not _TYPE_PATTERN.fullmatch(pattern) or (
                pattern.startswith("*/") and pattern != "*/*"
            ):
                raise ValueError(f"{pattern!r} is not a media type pattern such as 'image/*'")
        return lowered

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if not _KEY_PREFIX.fullmatch(prefix):
            raise ValueError(
                "use letters, digits, '.', '_' and '-', with '/' between segments "
                "(no leading, trailing or double '/')"
            )
        return prefix

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if not value:  # "" is unset, as for COURTYARD_REDIS_URL
            return None
        expected = (
            "expected an http(s) URL such as http://localhost:9000, without user, query or fragment"
        )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError(expected) from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError(expected)
        return value

    @model_validator(mode="after")
    def _check_backend(self) -> Self:
        if self.pending_ttl < self.upload_url_ttl:
            raise ValueError("pending_ttl must be at least upload_url_ttl")
        if self.backend == "s3":
            require_extra("COURTYARD_UPLOAD__BACKEND=s3", "s3", ["aiobotocore", "botocore"])
            if not self.s3_bucket:
                raise ValueError("s3_bucket is required when backend is 's3'")
        if self.s3_public_endpoint_url and not self.s3_endpoint_url:
            raise ValueError(
                "s3_public_endpoint_url needs s3_endpoint_url, the address the app reaches "
                "the store at (for AWS itself, set neither)"
            )
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both s3_access_key_id and s3_secret_access_key, or neither")
        return self

    def allows_type(self, content_type: str) -> bool:
        """Whether `content_type` (lower-case `type/subtype`) matches an allowed pattern."""
        kind, _, _ = content_type.partition("/")
        return any(pattern in (content_type, "*/*", f"{kind}/*") for pattern in self.allowed_types)
