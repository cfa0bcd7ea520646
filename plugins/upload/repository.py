"""Every query on `upload_file`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from core.db import BaseRepository, Slice, utcnow
from plugins.upload.models import UploadRecord

_LIVE = ("pending", "ready")


def _usage_conditions(owner: Any, now: Any) -> list[Any]:
    """What counts against the owner's quota: ready uploads and unexpired pending ones."""
    return [
        col(UploadRecord.owner_id) == owner,
        col(UploadRecord.deleted_at).is_(None),
        or_(
            col(UploadRecord.status) == "ready",
            (col(UploadRecord.status) == "pending") & (col(UploadRecord.expires_at) > now),
        ),
    ]


@cache
def _insert_within_quota() -> Any:
    """INSERT the new upload only if the owner's usage leaves room for it: the quota check
    and the insert in one statement, so no round trip to the server passes between them
    while the per-owner lock is held.
    Built once; every value is a bound parameter."""
    table = UploadRecord.__table__  # type: ignore[attr-defined]
    columns = list(table.c)
    usage = (
        sa_select(
            func.count().label("files"),
            func.coalesce(func.sum(col(UploadRecord.size)), 0).label("bytes"),
        )
        .where(*_usage_conditions(bindparam("owner_id"), bindparam("now")))
        .subquery()
    )
    values = sa_select(*[bindparam(c.name, type_=c.type) for c in columns]).where(
        usage.c.files < bindparam("quota_files"),
        usage.c.bytes + bindparam("size", type_=BigInteger) <= bindparam("quota_bytes"),
    )
    return insert(table).from_select([c.name for c in columns], values)


class UploadRepository(BaseRepository[UploadRecord]):
    model = UploadRecord

    async def create_within_quota(
        self, record: UploadRecord, now: datetime, *, quota_files: int, quota_bytes: int
    ) -> bool:
        """Store `record` if its owner stays within both quotas (call `lock_owner` first);
        False, and nothing stored, if it would not."""
        table = UploadRecord.__table__  # type: ignore[attr-defined]
        params = {c.name: getattr(record, c.name) for c in table.c}
        params.update(now=now, quota_files=quota_files, quota_bytes=quota_bytes)
        result = await self.session.exec(_insert_within_quota(), params=params)  # type: ignore[call-overload]
        return bool(result.rowcount == 1)

    async def lock_owner(self, owner_id: str) -> None:
        """Serialise quota checks of one owner until the transaction ends (PostgreSQL; a
        SQLite write transaction holds the database lock already)."""
        if self.session.get_bind().dialect.name == "postgresql":
            key = f"upload.quota:{owner_id}"  # a bound parameter
            await self.session.exec(select(func.pg_advisory_xact_lock(func.hashtext(key))))

    async def usage(self, owner_id: str, now: datetime) -> tuple[int, int]:
        """(files, bytes) that count against the owner's quota: ready uploads and pending
        ones that have not expired."""
        stmt = select(func.count(), func.coalesce(func.sum(col(UploadRecord.size)), 0)).where(
            *_usage_conditions(owner_id, now)
        )
        files, size = (await self.session.exec(stmt)).one()
        return int(files), int(size)

    async def page(
        self, owner_id: str, status: str | None, *, limit: int, cursor: str | None
    ) -> Slice[UploadRecord]:
        where: list[Any] = [col(UploadRecord.owner_id) == owner_id]
        if status is not None:
            where.append(col(UploadRecord.status) == status)
        return await self.list(limit=limit, cursor=cursor, where=where)

    async def mark_ready(self, upload_id: str, sha256: str | None, now: datetime) -> bool:
        """Pending → ready; False unless it is still a live pending upload that has not
        expired at `now` (a race lost to another completion, a deletion or the purge)."""
        result = await self.session.exec(  # type: ignore[call-overload]
            update(UploadRecord)
            .where(
                col(UploadRecord.id) == upload_id,
                col(UploadRecord.status) == "pending",
                col(UploadRecord.deleted_at).is_(None),
                or_(col(UploadRecord.expires_at).is_(None), col(UploadRecord.expires_at) > now),
            )
            .values(
                status="ready", sha256=sha256, completed_at=now, expires_at=None, updated_at=now
            )
        )
        return bool(result.rowcount == 1)

    async def mark_deleted(self, upload_ids: Sequence[str], *, only_pending: bool = False) -> int:
        """Soft-delete these uploads (those still live); how many changed."""
        if not upload_ids:
            return 0
        now = utcnow()
        statuses = ("pending",) if only_pending else _LIVE
        result = await self.session.exec(  # type: ignore[call-overload]
            update(UploadRecord)
            .where(
                col(UploadRecord.id).in_(upload_ids),
                col(UploadRecord.status).in_(statuses),
                col(UploadRecord.deleted_at).is_(None),
            )
            .values(status="deleted", deleted_at=now, updated_at=now)
        )
        return int(result.rowcount)

    async def live_of_owner(self, owner_id: str, limit: int) -> list[UploadRecord]:
        """Up to `limit` live uploads of the owner (oldest first)."""
        stmt = (
            self.select()
            .where(col(UploadRecord.owner_id) == owner_id)
            .order_by(col(UploadRecord.id))
            .limit(limit)
        )
        return list((await self.session.exec(stmt)).all())

    async def claim_expired_pending(self, now: datetime, limit: int) -> list[UploadRecord]:
        """Up to `limit` pending uploads whose time to complete has passed, locked until the
        transaction ends; rows another transaction has locked are skipped, not waited for.

        `FOR UPDATE SKIP LOCKED` on PostgreSQL: purges running at once in several instances
        each take rows no other one holds, and a row purged and committed meanwhile no
        longer matches (READ COMMITTED re-checks the conditions on the locked row). SQLite
        renders no locking clause; there a write transaction holds the whole database from
        its start (`BEGIN IMMEDIATE`, see `core.db.engine`), which serialises purges."""
        stmt = (
            self.select()
            .where(col(UploadRecord.status) == "pending", col(UploadRecord.expires_at) <= now)
            .order_by(col(UploadRecord.expires_at), col(UploadRecord.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.exec(stmt)).all())

    async def count_expired_pending(self, now: datetime) -> int:
        stmt = select(func.count()).where(
            col(UploadRecord.status) == "pending",
            col(UploadRecord.deleted_at).is_(None),
            col(UploadRecord.expires_at) <= now,
        )
        return int((await self.session.exec(stmt)).one())
