"""The `local` backend: files under one folder, uploaded and downloaded through the
plugin's own signed endpoints.

An upload streams to a private temporary file in `<root>/.incoming/`, counting bytes as
they arrive, and is then linked into place, which is atomic and fails if the object
exists: a refused or broken upload leaves nothing behind, and an object is stored once.
File work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
import anyio.to_thread

from core.hookspecs import NotReady
from plugins.upload.signing import UrlSigner
from plugins.upload.storage.base import (
    AlreadyStored,
    ContentUrl,
    IncompleteUpload,
    ObjectRef,
    StorageUnavailable,
    StoredObject,
    TooLarge,
    UploadTarget,
)

R = TypeVar("R")
_INCOMING = ".incoming"
_WRITE_BUFFER = 1024 * 1024  # bytes gathered before each write (fewer thread hops)


def signed_url(base: str, signer: UrlSigner, method: str, obj: ObjectRef, expires: int) -> str:
    signature = signer.sign(method, obj.upload_id, obj.key, obj.size, obj.content_type, expires)
    return f"{base}?{urlencode({'expires': expires, 'signature': signature})}"


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root.resolve()
        self.signer = signer

    def path_of(self, key: str) -> Path:
        """The file of `key`. Keys are made by the server, but never trusted to stay inside."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"object key {key!r} leaves the storage root")
        return path

    async def upload_target(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> UploadTarget:
        url = signed_url(
            content_url(obj.upload_id), self.signer, "PUT", obj, int(expires_at.timestamp())
        )
        return UploadTarget(
            url=url,
            method="PUT",
            expires_at=expires_at,
            headers={"Content-Type": obj.content_type},
        )

    async def download_url(
        self, obj: ObjectRef, expires_at: datetime, content_url: ContentUrl
    ) -> str:
        return signed_url(
            content_url(obj.upload_id), self.signer, "GET", obj, int(expires_at.timestamp())
        )

    async def store(self, obj: ObjectRef, chunks: AsyncIterable[bytes]) -> str:
        """Write exactly `obj.size` bytes from `chunks` as the object; their SHA-256 (hex).

        Raises TooLarge as soon as a byte too many arrives, IncompleteUpload when the body
        ends short, AlreadyStored when the object exists; in every case nothing is kept.
        """
        target = self.path_of(obj.key)
        incoming = self.root / _INCOMING
        temporary = incoming / f"{obj.upload_id}.{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        try:
            await _run(_make_folders, incoming, target.parent)
            received = 0
            async with await anyio.open_file(temporary, "xb") as file:
                pending: list[bytes] = []
                buffered = 0
                async for chunk in chunks:
                    received += len(chunk)
                    if received > obj.size:
                        raise TooLarge
                    digest.update(chunk)
                    pending.append(chunk)
                    buffered += len(chunk)
                    if buffered >= _WRITE_BUFFER:
                        await file.write(b"".join(pending))
                        pending, buffered = [], 0
                await file.write(b"".join(pending))
                if received < obj.size:
                    raise IncompleteUpload(received)
                await file.flush()
                await _run(os.fsync, file.wrapped.fileno())
            await _run(_link, temporary, target)
        except OSError as exc:
            raise StorageUnavailable("File storage failed to store the upload") from exc
        finally:
            await _run(_remove, temporary)
        return digest.hexdigest()

    async def stat(self, key: str) -> StoredObject | None:
        try:
            return StoredObject((await _run(self.path_of(key).stat)).st_size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable from exc

    async def read_head(self, key: str, length: int) -> bytes:
        def read() -> bytes:
            with self.path_of(key).open("rb") as file:
                return file.read(length)

        try:
            return await _run(read)
        except OSError as exc:
            raise StorageUnavailable from exc

    async def sha256(self, key: str) -> str | None:
        def digest() -> str:
            with self.path_of(key).open("rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()

        try:
            return await _run(digest)
        except OSError as exc:
            raise StorageUnavailable from exc

    async def delete(self, keys: Sequence[str]) -> None:
        def unlink_all() -> None:
            for key in keys:
                _remove(self.path_of(key))

        try:
            await _run(unlink_all)
        except OSError as exc:
            raise StorageUnavailable from exc

    async def check(self) -> None:
        def probe() -> None:
            incoming = self.root / _INCOMING
            incoming.mkdir(parents=True, exist_ok=True)
            probe_file = incoming / f"ready.{secrets.token_hex(8)}"
            probe_file.write_bytes(b"ok")
            probe_file.unlink()

        try:
            await _run(probe)
        except OSError as exc:
            raise NotReady(f"the upload folder is not writable ({exc.strerror})") from exc

    async def close(self) -> None:
        return None


async def _run(function: Callable[..., R], *args: Any) -> R:
    return await anyio.to_thread.run_sync(function, *args)


def _make_folders(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def _link(source: Path, target: Path) -> None:
    """Put `source` at `target` unless something is there already (atomic)."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise AlreadyStored from None
    except OSError as exc:  # a file system without hard links: exclusive create instead
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise AlreadyStored from None
        os.close(fd)
        os.replace(source, target)


def _remove(path: Path) -> None:
    """Remove `path` if it is there (a file in its place of a folder means it is not)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()
