"""The `auth_*` tables. Private to the plugin.

These rows record security facts, so they are never soft-deleted: a session is *revoked*
(`revoked_at`), a refresh token is *spent* (`used_at`), and both stay as an audit trail
(nothing purges them yet).
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, String
from sqlmodel import Field

from core.db import Model, UTCDateTime, id_field, utcnow
from core.db.ids import ID_MAX_LENGTH

SESSION_ID_PREFIX = "ses"
REFRESH_TOKEN_ID_PREFIX = "rtk"  # noqa: S105 - an id prefix, not a secret
USER_AGENT_MAX_LENGTH = 512
IP_MAX_LENGTH = 64
HASH_LENGTH = 64  # SHA-256, hex
ACTION_TOKEN_ID_PREFIX = "atk"  # noqa: S105 - an id prefix, not a secret


def _user_id(*, primary_key: bool = False) -> Column[str]:
    """A reference to the owning user (indexed); a hard delete of the user removes the row."""
    return Column(
        String(ID_MAX_LENGTH),
        ForeignKey("user.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
        index=not primary_key,
    )


class Credential(Model, table=True):
    """A user's password, as an argon2id hash. Users without one cannot log in with a password."""

    __tablename__ = "auth_credential"

    user_id: str = Field(sa_column=_user_id(primary_key=True))
    password_hash: str = Field(sa_type=String(255))
    changed_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )


class AuthSession(Model, table=True):
    """One signed-in device: created by a login, kept alive by refreshes, ended by revocation."""

    __tablename__ = "auth_session"

    id: str = id_field(SESSION_ID_PREFIX)
    user_id: str = Field(sa_column=_user_id())
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    last_used_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    expires_at: datetime = Field(sa_type=UTCDateTime, sa_column_kwargs={"nullable": False})
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    user_agent: str | None = Field(default=None, sa_type=String(USER_AGENT_MAX_LENGTH))
    ip: str | None = Field(default=None, sa_type=String(IP_MAX_LENGTH))


class RefreshToken(Model, table=True):
    """One refresh token of a session. Only its SHA-256 is stored, never the token."""

    __tablename__ = "auth_refresh_token"

    id: str = id_field(REFRESH_TOKEN_ID_PREFIX)
    session_id: str = Field(
        sa_column=Column(
            String(ID_MAX_LENGTH),
            ForeignKey("auth_session.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    token_hash: str = Field(sa_type=String(HASH_LENGTH), unique=True)
    issued_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    replaced_by: str | None = Field(default=None, sa_type=String(ID_MAX_LENGTH))


class ActionToken(Model, table=True):
    """A single-use token mailed to a user: a password reset or an email verification.

    Only its SHA-256 is stored. `bound_to` is a digest of what the token was issued against
    (the password hash for a reset, the email for a verification): when that changes, the
    token stops working, however it was changed.
    """

    __tablename__ = "auth_action_token"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset', 'verify_email')", name="purpose"),
    )

    id: str = id_field(ACTION_TOKEN_ID_PREFIX)
    user_id: str = Field(sa_column=_user_id())
    purpose: str = Field(sa_type=String(32))
    token_hash: str = Field(sa_type=String(HASH_LENGTH), unique=True)
    bound_to: str = Field(sa_type=String(HASH_LENGTH))
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    expires_at: datetime = Field(sa_type=UTCDateTime, sa_column_kwargs={"nullable": False})
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
