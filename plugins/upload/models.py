"""The `upload_file` table. Private to the plugin: the API shows uploads as `schemas.Upload`."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String
from sqlmodel import Field, col

from core.db import Entity, UTCDateTime, id_field
from core.db.ids import ID_MAX_LENGTH

UPLOAD_ID_PREFIX = "upl"
FILENAME_MAX_LENGTH = 255
CONTENT_TYPE_MAX_LENGTH = 127
KEY_MAX_LENGTH = 512
STATUSES = ("pending", "ready", "deleted")


class UploadRecord(Entity, table=True):
    __tablename__ = "upload_file"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'ready', 'deleted')", name="status"),
        CheckConstraint("size >= 0", name="size"),
    )

    id: str = id_field(UPLOAD_ID_PREFIX)
    # A hard delete of the user removes the rows (a soft delete goes through `user_deleted`).
    owner_id: str = Field(
        sa_column=Column(
            String(ID_MAX_LENGTH), ForeignKey("user.id", ondelete="CASCADE"), nullable=False
        )
    )
    key: str = Field(max_length=KEY_MAX_LENGTH, sa_type=String(KEY_MAX_LENGTH), unique=True)
    filename: str = Field(max_length=FILENAME_MAX_LENGTH, sa_type=String(FILENAME_MAX_LENGTH))
    content_type: str = Field(
        max_length=CONTENT_TYPE_MAX_LENGTH, sa_type=String(CONTENT_TYPE_MAX_LENGTH)
    )
    size: int = Field(sa_type=BigInteger)
    status: str = Field(default="pending", max_length=16, sa_type=String(16))
    sha256: str | None = Field(default=None, max_length=64, sa_type=String(64))
    # When a pending upload stops waiting for completion (purge removes it after that).
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# A user's uploads, newest first (lists, quota sums and deletion of everything a user has).
Index("ix_upload_file_owner_id", col(UploadRecord.owner_id), col(UploadRecord.id))
# Pending uploads by expiry, for the purge.
Index("ix_upload_file_status_expires_at", col(UploadRecord.status), col(UploadRecord.expires_at))
