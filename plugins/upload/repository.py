"""Every query on `upload_file`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, text, update
from sqlmodel import col, select

from core.db import BaseRepository, Slice, utcnow
from plugins.upload.models import UploadRecord

_LIVE = ("pending", "ready")


class UploadRepository(BaseRepository[UploadRecord]):
    model = UploadRecord

    async def lock_owner(self, owner_id: str) -> None:
        """Serialise quota checks of one owner until the transaction ends (PostgreSQL; a
        SQLite write transaction holds the database lock already)."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.exec(  # type: ignore[call-overload]
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                params={"key": f"upload.quota:{owner_id}"},
            )

    async def usage(self, owner_id: str, now: datetime) -> tuple[int, int]:
        """(files, bytes) that count against the owner's quota: ready uploads and pending
        ones that have not expired."""
        stmt = select(func.count(), func.coalesce(func.sum(col(UploadRecord.size)), 0)).where(
            col(UploadRecord.owner_id) == owner_id,
            col(UploadRecord.deleted_at).is_(None),
            or_(
                col(UploadRecord.status) == "ready",
                (col(UploadRecord.status) == "pending") & (col(UploadRecord.expires_at) > now),
            ),
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

    async def expired_pending(self, now: datetime, limit: int) -> list[UploadRecord]:
        """Up to `limit` pending uploads whose time to complete has passed."""
        stmt = (
            self.select()
            .where(col(UploadRecord.status) == "pending", col(UploadRecord.expires_at) <= now)
            .order_by(col(UploadRecord.expires_at), col(UploadRecord.id))
            .limit(limit)
        )
        return list((await self.session.exec(stmt)).all())

    async def count_expired_pending(self, now: datetime) -> int:
        stmt = select(func.count()).where(
            col(UploadRecord.status) == "pending",
            col(UploadRecord.deleted_at).is_(None),
            col(UploadRecord.expires_at) <= now,
        )
        return int((await self.session.exec(stmt)).one())
