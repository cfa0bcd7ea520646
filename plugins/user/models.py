"""The `user` table. Private to the plugin: others see users as `api.User`."""

from sqlalchemy import CheckConstraint, Index, String
from sqlmodel import Field, col

from core.db import Entity, id_field
from plugins.user.api import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, USER_ID_PREFIX


class UserRecord(Entity, table=True):
    __tablename__ = "user"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: str = id_field(USER_ID_PREFIX)
    email: str = Field(max_length=EMAIL_MAX_LENGTH, sa_type=String(EMAIL_MAX_LENGTH))
    # The email lower-cased in Python, so "the same address" means the same thing on every
    # database (SQLite's lower() folds only A-Z). Never shown; set with the email.
    email_key: str = Field(max_length=EMAIL_MAX_LENGTH, sa_type=String(EMAIL_MAX_LENGTH))
    name: str = Field(max_length=NAME_MAX_LENGTH, sa_type=String(NAME_MAX_LENGTH))
    role: str = Field(default="user", max_length=16, sa_type=String(16))
    is_active: bool = True
    email_verified: bool = False


def email_key(email: str) -> str:
    """What two spellings of one address have in common: case does not matter."""
    return email.lower()


# An email belongs to one live account, compared case-insensitively; soft-deleted accounts
# release it (so it can sign up again) and take it back only if it is still free on restore.
Index(
    "uq_user_email_live",
    col(UserRecord.email_key),
    unique=True,
    postgresql_where=col(UserRecord.deleted_at).is_(None),
    sqlite_where=col(UserRecord.deleted_at).is_(None),
)

# Member statistics count the live users created since an instant (`UserRepository.
# count_live`): `deleted_at IS NULL` then a range of `created_at`, read from this index
# alone. (Not a partial index on `created_at`: SQLite's planner prefers `ix_user_deleted_at`
# to it and would read every live row.)
Index("ix_user_deleted_at_created_at", col(UserRecord.deleted_at), col(UserRecord.created_at))
