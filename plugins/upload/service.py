"""Domain rules for uploads: grants, quotas, completion checks, visibility, deletion, purge.

The service opens its own short database sessions: storage calls (a network round trip to
S3, a file check) never run while a transaction holds a connection, except in `purge`,
whose row locks must cover the deletion of the objects (see there).

Order of effects, chosen so that every failure can be retried and users never see a ready
upload without its object: deleting removes the object first and then the record (a
failed record update leaves a record whose DELETE can simply be repeated); completing
checks the object first and then flips the record, only while it is still pending and
unexpired.

Every public method returns a DTO of `plugins.upload.schemas` (or a plain value), never an
`UploadRecord`: the table model stays between this module and the repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from datetime import datetime, timedelta

from core.db import Database, Page, PageParams, is_valid_id, utcnow
from core.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from core.identity import Principal
from plugins.upload.models import UPLOAD_ID_PREFIX, UploadRecord
from plugins.upload.repository import UploadRepository
from plugins.upload.schemas import PurgeResult, StoredFile, Upload, UploadCreate, UploadGrant
from plugins.upload.settings import UploadSettings
from plugins.upload.signing import UrlSigner, now
from plugins.upload.sniffing import SNIFF_BYTES, matches_type, sniffable
from plugins.upload.storage import (
    AlreadyStored,
    IncompleteUpload,
    ObjectRef,
    StorageBackend,
    TooLarge,
)
from plugins.upload.storage.base import ContentUrl
from plugins.upload.storage.local import LocalStorage

BATCH = 100  # rows per step of a purge or of deleting a user's uploads
# Purge leaves a pending upload alone for this long after it expired, so a completion
# that was already under way when it expired cannot lose its object.
PURGE_GRACE = timedelta(minutes=1)
USER_ID_PREFIX = "usr"


def to_upload(record: UploadRecord, download: tuple[str, datetime] | None = None) -> Upload:
    upload = Upload.model_validate(record, from_attributes=True)
    if download is not None:
        upload.download_url, upload.download_expires_at = download
    return upload


def object_of(record: UploadRecord) -> ObjectRef:
    return ObjectRef(record.id, record.key, record.size, record.content_type, record.filename)


def _not_found(upload_id: str) -> NotFoundError:
    return NotFoundError(f"Upload {upload_id} not found", code="upload.not_found")


def _already_completed(upload_id: str) -> ConflictError:
    return ConflictError(f"Upload {upload_id} is already complete", code="upload.already_completed")


class UploadService:
    def __init__(
        self,
        settings: UploadSettings,
        database: Database,
        storage: StorageBackend,
        signer: UrlSigner,
    ) -> None:
        self.settings = settings
        self.database = database
        self.storage = storage
        self.signer = signer

    # Creating and completing

    async def create(
        self, principal: Principal, data: UploadCreate, content_url: ContentUrl
    ) -> UploadGrant:
        """A pending upload and the grant to send its bytes; refused over size, type or quota."""
        settings = self.settings
        if not is_valid_id(principal.user_id, USER_ID_PREFIX):
            raise ForbiddenError("Only user accounts can upload files", code="upload.not_a_user")
        if data.size > settings.max_size:
            raise PayloadTooLargeError(
                f"The file is larger than the limit of {settings.max_size} bytes",
                code="upload.too_large",
            )
        if not settings.allows_type(data.content_type):
            raise UnsupportedMediaTypeError(
                f"Files of type {data.content_type} are not accepted; allowed: "
                f"{', '.join(settings.allowed_types)}",
                code="upload.unsupported_type",
            )
        created = utcnow()
        record = UploadRecord(
            owner_id=principal.user_id,
            key="",
            filename=data.filename,
            content_type=data.content_type,
            size=data.size,
            expires_at=created + timedelta(seconds=settings.pending_ttl),
            created_at=created,
            updated_at=created,
        )
        record.key = f"{settings.key_prefix}/{principal.user_id}/{record.id}"
        url_expires_at = created + timedelta(seconds=settings.upload_url_ttl)
        target = await self.storage.upload_target(object_of(record), url_expires_at, content_url)
        async with self.database.write_sessions() as session:
            uploads = UploadRepository(session)
            await uploads.lock_owner(principal.user_id)
            if not await uploads.create_within_quota(
                record, created, quota_files=settings.quota_files, quota_bytes=settings.quota_bytes
            ):
                files, size = await uploads.usage(principal.user_id, created)
                raise ConflictError(
                    f"This upload would exceed your quota of {settings.quota_files} files "
                    f"and {settings.quota_bytes} bytes (you have {files} files, {size} bytes)",
                    code="upload.quota_exceeded",
                )
            await session.commit()
        return UploadGrant(
            upload=to_upload(record),
            url=target.url,
            method=target.method,  # type: ignore[arg-type]
            fields=target.fields,
            headers=target.headers,
            expires_at=target.expires_at,
        )

    async def complete(self, principal: Principal, upload_id: str) -> Upload:
        """Check the stored object (exists, exact size, content fits the type) and mark the
        upload ready; a wrong object is deleted, so the grant can be used again."""
        record = await self._visible(principal, upload_id, fresh=True, admin=False)
        if record.status == "ready":
            raise _already_completed(upload_id)
        if record.expires_at is not None and record.expires_at <= utcnow():
            raise ConflictError(
                f"Upload {upload_id} expired before it was completed", code="upload.expired"
            )
        stored = await self.storage.stat(record.key)
        if stored is None or stored.size != record.size:
            if stored is not None:
                await self.storage.delete([record.key])
            received = "nothing arrived" if stored is None else f"{stored.size} bytes arrived"
            raise ConflictError(
                f"The file was not received: {received}, {record.size} declared",
                code="upload.not_received",
            )
        stored_type = (stored.content_type or record.content_type).split(";")[0].strip().lower()
        if stored_type != record.content_type:
            await self.storage.delete([record.key])
            raise ConflictError(
                f"The file was sent as {stored_type}, not {record.content_type} as declared; "
                "it was discarded",
                code="upload.type_mismatch",
            )
        if sniffable(record.content_type):
            head = await self.storage.read_head(record.key, SNIFF_BYTES)
            if not matches_type(record.content_type, head):
                await self.storage.delete([record.key])
                raise ConflictError(
                    f"The file's content is not {record.content_type}; it was discarded",
                    code="upload.type_mismatch",
                )
        digest = await self.storage.sha256(record.key)
        async with self.database.write_sessions() as session:
            uploads = UploadRepository(session)
            changed = await uploads.mark_ready(record.id, digest, utcnow())
            await session.commit()
            current = await uploads.get(record.id, include_deleted=True)
        if not changed or current is None:
            if current is None or current.deleted_at is not None:
                raise _not_found(upload_id)
            if current.status == "ready":
                raise _already_completed(upload_id)
            raise ConflictError(
                f"Upload {upload_id} expired before it was completed", code="upload.expired"
            )
        return to_upload(current)

    # Reading

    async def get(self, principal: Principal, upload_id: str, content_url: ContentUrl) -> Upload:
        """The upload, with a short-lived download URL when it is ready."""
        record = await self._visible(principal, upload_id)
        if record.status != "ready":
            return to_upload(record)
        expires_at = utcnow() + timedelta(seconds=self.settings.download_url_ttl)
        url = await self.storage.download_url(object_of(record), expires_at, content_url)
        return to_upload(record, (url, expires_at))

    async def list(
        self, principal: Principal, owner_id: str | None, status: str | None, page: PageParams
    ) -> Page[Upload]:
        """The caller's uploads (an admin may name another owner), newest first."""
        owner = owner_id or principal.user_id
        if owner != principal.user_id and not principal.has_role("admin"):
            raise ForbiddenError(
                "Only admins may list other users' uploads", code="upload.owner_forbidden"
            )
        async with self.database.read_sessions() as session:
            rows = await UploadRepository(session).page(
                owner, status, limit=page.limit, cursor=page.cursor
            )
        return Page[Upload].of(rows, to_upload)

    # Deleting

    async def delete(self, principal: Principal, upload_id: str) -> None:
        """Delete the object, then soft-delete the record (its owner's, or any for an admin)."""
        record = await self._visible(principal, upload_id, fresh=True)
        await self.storage.delete([record.key])
        async with self.database.write_sessions() as session:
            await UploadRepository(session).mark_deleted([record.id])
            await session.commit()

    async def delete_all_of(self, user_id: str) -> int:
        """Delete every upload of `user_id` (objects, then records); how many."""
        deleted = 0
        while True:
            async with self.database.primary_read_sessions() as session:
                batch = await UploadRepository(session).live_of_owner(user_id, BATCH)
            if not batch:
                return deleted
            await self.storage.delete([record.key for record in batch])
            async with self.database.write_sessions() as session:
                deleted += await UploadRepository(session).mark_deleted([r.id for r in batch])
                await session.commit()

    async def expired_count(self) -> int:
        async with self.database.primary_read_sessions() as session:
            return await UploadRepository(session).count_expired_pending(utcnow() - PURGE_GRACE)

    async def purge(self, progress: Callable[[int], None] | None = None) -> PurgeResult:
        """Delete pending uploads that expired (objects, then records); what this run
        deleted, and `progress(n)` after each batch of n it committed.

        Several instances may purge at once (each app's periodic purge, the CLI): each
        upload is purged by exactly one of them. A batch is claimed with row locks that
        others skip (`UploadRepository.claim_expired_pending`), and the lock is held, in
        one transaction, across the storage deletion until the records are marked and
        committed; only committed rows are counted. This is the one place the service
        calls storage inside a transaction, on purpose: the lock must cover the deletion.
        Releasing it earlier would either let another instance delete the same objects
        (claim, unlock, delete) or lose track of objects (mark, commit, then a crash
        before the deletion leaves files no record points to). As it is, a failure or a
        crash before the commit rolls the batch back: the records stay pending and
        expired, and the next purge deletes their objects again (missing ones are fine)
        and marks them. So objects are deleted at least once and exactly once unless a
        purge dies mid-batch; a record never says deleted while its object may remain.

        Row locks per batch (`FOR UPDATE SKIP LOCKED`) rather than one advisory lock per
        run: instances share the work instead of queueing behind one another, nothing
        is held between batches, and a lock scoped to a run would have to keep one
        transaction (and its connection) open for the whole run, or be session-scoped,
        which a transaction pooler (`COURTYARD_DB_POOLER=transaction`) cannot keep.
        The cost: one connection held for each batch's storage deletion (one S3
        DeleteObjects request, or up to `BATCH` local file removals); on SQLite the write
        lock is held that long, and other writers wait for it (up to the busy timeout)."""
        cutoff = utcnow() - PURGE_GRACE
        uploads = size = 0
        while True:
            async with self.database.write_sessions() as session:
                repository = UploadRepository(session)
                batch = await repository.claim_expired_pending(cutoff, BATCH)
                if not batch:
                    return PurgeResult(uploads, size)
                await self.storage.delete([record.key for record in batch])
                await repository.mark_deleted([r.id for r in batch], only_pending=True)
                await session.commit()
            uploads += len(batch)
            size += sum(record.size for record in batch)
            if progress is not None:
                progress(len(batch))

    # The local backend's signed endpoints

    async def receive(
        self,
        upload_id: str,
        expires: int,
        signature: str,
        content_type: str | None,
        content_length: int | None,
        chunks: AsyncIterable[bytes],
    ) -> None:
        """Store the body of a signed PUT as the upload's object (local backend only)."""
        record = await self._signed("PUT", upload_id, expires, signature)
        if record.deleted_at is not None:
            raise _not_found(upload_id)
        if record.status == "ready":
            raise _already_completed(upload_id)
        sent_type = (content_type or "").split(";", 1)[0].strip().lower()
        if sent_type != record.content_type:
            raise UnsupportedMediaTypeError(
                f"Content-Type must be {record.content_type}, as declared",
                code="upload.content_type_mismatch",
            )
        if content_length is not None and content_length > record.size:
            raise _too_large(record)
        if content_length is not None and content_length < record.size:
            raise BadRequestError(
                f"Content-Length is {content_length}; the upload declared {record.size} bytes",
                code="upload.size_mismatch",
            )
        local = self._local(upload_id)
        try:
            await local.store(object_of(record), chunks)
        except TooLarge:
            raise _too_large(record) from None
        except IncompleteUpload as exc:
            raise BadRequestError(
                f"The body ended after {exc.received} of {record.size} bytes",
                code="upload.size_mismatch",
            ) from None
        except AlreadyStored:
            raise ConflictError(
                f"Upload {upload_id} has been stored already", code="upload.already_stored"
            ) from None

    async def signed_download(self, upload_id: str, expires: int, signature: str) -> StoredFile:
        """The file of the ready upload a signed GET is for (local backend only)."""
        local = self._local(upload_id)
        record = await self._signed("GET", upload_id, expires, signature)
        if (
            record.deleted_at is not None
            or record.status != "ready"
            or await local.stat(record.key) is None
        ):
            raise _not_found(upload_id)
        return StoredFile(local.path_of(record.key), record.content_type, record.filename)

    # Helpers

    def _local(self, upload_id: str) -> LocalStorage:
        if not isinstance(self.storage, LocalStorage):  # the routes exist only for `local`
            raise _not_found(upload_id)
        return self.storage

    async def _visible(
        self, principal: Principal, upload_id: str, *, fresh: bool = False, admin: bool = True
    ) -> UploadRecord:
        """The live upload if `principal` owns it (or is an admin, where `admin`); else 404."""
        if not is_valid_id(upload_id, UPLOAD_ID_PREFIX):
            raise _not_found(upload_id)
        sessions = self.database.primary_read_sessions if fresh else self.database.read_sessions
        async with sessions() as session:
            record = await UploadRepository(session).get(upload_id)
        if record is None or (
            record.owner_id != principal.user_id and not (admin and principal.has_role("admin"))
        ):
            raise _not_found(upload_id)
        return record

    async def _signed(
        self, method: str, upload_id: str, expires: int, signature: str
    ) -> UploadRecord:
        """The upload a signed URL is for; 403 unless the signature is valid and current."""
        record = None
        if is_valid_id(upload_id, UPLOAD_ID_PREFIX):
            async with self.database.primary_read_sessions() as session:
                record = await UploadRepository(session).get(upload_id, include_deleted=True)
        if record is None or not self.signer.verify(
            signature, method, record.id, record.key, record.size, record.content_type, expires
        ):
            raise ForbiddenError(
                "The URL's signature is not valid", code="upload.invalid_signature"
            )
        if expires < now():
            raise ForbiddenError("The URL has expired", code="upload.url_expired")
        return record


def _too_large(record: UploadRecord) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The body is larger than the {record.size} bytes declared", code="upload.too_large"
    )
