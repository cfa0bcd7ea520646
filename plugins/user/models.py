"""The `user` table. Private to the plugin: others see users as `api.User`."""

from sqlalchemy import CheckConstraint, Index, String, func
from sqlmodel import Field, col

from core.db import Entity, id_field
from plugins.user.api import USER_ID_PREFIX

EMAIL_MAX_LENGTH = 320  # RFC 3696 (errata): 64 for the local part, @, 255 for the domain
NAME_MAX_LENGTH = 200


class UserRecord(Entity, table=True):
    __tablename__ = "user"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: str = id_field(USER_ID_PREFIX)
    email: str = Field(max_length=EMAIL_MAX_LENGTH, sa_type=String(EMAIL_MAX_LENGTH))
    name: str = Field(max_length=NAME_MAX_LENGTH, sa_type=String(NAME_MAX_LENGTH))
    role: str = Field(default="user", max_length=16, sa_type=String(16))
    is_active: bool = True
    email_verified: bool = False


# An email belongs to one live account, compared case-insensitively; soft-deleted accounts
# release it (so it can sign up again) and take it back only if it is still free on restore.
Index(
    "uq_user_email_live",
    func.lower(col(UserRecord.email)),
    unique=True,
    postgresql_where=col(UserRecord.deleted_at).is_(None),
    sqlite_where=col(UserRecord.deleted_at).is_(None),
)
