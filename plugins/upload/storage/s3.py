"""The `s3` backend: any S3-compatible service, through aiobotocore.

Clients upload with a presigned POST whose policy pins the exact key, the exact size
(`content-length-range` from size to size) and the exact `Content-Type`, so a conforming
service refuses anything else; the server checks the stored object again on completion
regardless. Downloads are presigned GETs that answer as an attachment with the declared
type. Two clients, opened on first use and reopened after `close()`: one for every
request the app makes to the store (at `s3_endpoint_url`), and one that presigns the URLs
browsers use, for `s3_public_endpoint_url` when set (SigV4 signs the host, so a URL cannot
be rewritten for another address afterwards; presigning makes no request). Unset, the
first client presigns too.

aiobotocore comes with the `s3` extra (`pip install 'courtyard[s3]'`): `open_storage`
imports this module only for `COURTYARD_UPLOAD__BACKEND=s3`, which the settings refuse
without the extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from core.hookspecs import NotReady
from plugins.upload.filenames import content_disposition
from plugins.upload.settings import UploadSettings
from plugins.upload.storage.base import (
    ContentUrl,
    ObjectRef,
    StorageUnavailable,
    StoredObject,
    UploadTarget,
)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


def _seconds_until(moment: datetime) -> int:
    return max(1, int((moment - datetime.now(UTC)).total_seconds()))


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in _NOT_FOUND or status == 404


class S3Storage:
    name = "s3"

    def __init__(self, settings: UploadSettings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket or ""
        # (the client that talks to the store, the one that presigns URLs for browsers)
        self._clients: tuple[Any, Any] | None = None
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    def _client(self, session: AioSession, endpoint_url: str | None) -> Any:
        """A client for the store at `endpoint_url` (unset: AWS), not yet opened."""
        settings = self.settings
        secret = settings.s3_secret_access_key
        config = AioConfig(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            # A custom endpoint (MinIO, R2, a test server) is addressed by path.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        return session.create_client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )

    async def _open(self) -> tuple[Any, Any]:
        if self._clients is not None:
            return self._clients
        async with self._lock:
            if self._clients is None:
                settings, session = self.settings, get_session()
                async with AsyncExitStack() as stack:  # closes what opened if one fails
                    store = presigner = await stack.enter_async_context(
                        self._client(session, settings.s3_endpoint_url)
                    )
                    if settings.s3_public_endpoint_url:
                        presigner = await stack.enter_async_context(
                            self._client(session, settings.s3_public_endpoint_url)
                        )
                    self._stack = stack.pop_all()
                self._clients = (store, presigner)
        return self._clients

    async def _s3(self) -> Any:
        """The client for every request the app itself makes to the store."""
        return (await self._open())[0]

    async def _presigner(self) -> Any:
        """The client that signs the URLs browsers use: for s3_public_endpoint_url when
        set (presigning makes no request), else the store's own client."""
        return (await self._open())[1]

    async def upload_target(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> UploadTarget:
        s3 = await self._presigner()
        try:
            post = await s3.generate_presigned_post(
                Bucket=self.bucket,
                Key=obj.key,
                Fields={"Content-Type": obj.content_type},
                Conditions=[
                    {"Content-Type": obj.content_type},
                    ["content-length-range", obj.size, obj.size],
                ],
                ExpiresIn=_seconds_until(expires_at),
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable from exc
        return UploadTarget(
            url=post["url"], method="POST", expires_at=expires_at, fields=dict(post["fields"])
        )

    async def download_url(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> str:
        s3 = await self._presigner()
        try:
            url: str = await s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": obj.key,
                    "ResponseContentDisposition": content_disposition(obj.filename),
                    "ResponseContentType": obj.content_type,
                },
                ExpiresIn=_seconds_until(expires_at),
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable from exc
        return url

    async def stat(self, key: str) -> StoredObject | None:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise StorageUnavailable from exc
        except BotoCoreError as exc:
            raise StorageUnavailable from exc
        return StoredObject(int(head["ContentLength"]), head.get("ContentType"))

    async def read_head(self, key: str, length: int) -> bytes:
        s3 = await self._s3()
        try:
            response = await s3.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if _missing(exc) or exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # gone, or empty
            raise StorageUnavailable from exc
        except BotoCoreError as exc:
            raise StorageUnavailable from exc
        return data[:length]

    async def sha256(self, key: str) -> str | None:
        return None  # reading the whole object back is not cheap on S3

    async def delete(self, keys: Sequence[str]) -> None:
        s3 = await self._s3()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            try:
                result = await s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except (BotoCoreError, ClientError) as exc:
                raise StorageUnavailable from exc
            failed = [e for e in result.get("Errors", []) if e.get("Code") not in _NOT_FOUND]
            if failed:
                raise StorageUnavailable(
                    f"File storage refused to delete {len(failed)} object(s): "
                    f"{failed[0].get('Code')}"
                )

    async def check(self) -> None:
        try:
            s3 = await self._s3()
            await s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _missing(exc):
                raise NotReady(f"bucket {self.bucket!r} does not exist") from exc
            code = exc.response.get("Error", {}).get("Code")
            raise NotReady(f"bucket {self.bucket!r} cannot be used ({code})") from exc
        except BotoCoreError as exc:
            raise NotReady(f"the S3 service cannot be reached ({type(exc).__name__})") from exc

    async def close(self) -> None:
        async with self._lock:
            stack, self._stack, self._clients = self._stack, None, None
        if stack is not None:
            await stack.aclose()
