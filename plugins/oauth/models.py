"""The `oauth_*` tables. Private to the plugin.

Each row belongs to a user (a foreign key to the `user` plugin's table, the one thing of
another plugin a table may point at): a hard delete of the user removes its identities
and its flows in progress.
"""

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, UniqueConstraint
from sqlmodel import Field

from core.db import Model, UTCDateTime, id_field, utcnow
from core.db.ids import ID_MAX_LENGTH
from plugins.user.api import EMAIL_MAX_LENGTH

IDENTITY_ID_PREFIX = "aid"
FLOW_ID_PREFIX = "oaf"
PROVIDER_MAX_LENGTH = 32
SUBJECT_MAX_LENGTH = 255
SECRET_MAX_LENGTH = 128
REDIRECT_MAX_LENGTH = 2048
HASH_LENGTH = 64  # SHA-256, hex


def _user_id(*, nullable: bool = False) -> Column[str]:
    """A reference to the owning user (indexed); a hard delete of the user removes the row."""
    return Column(
        String(ID_MAX_LENGTH),
        ForeignKey("user.id", ondelete="CASCADE"),
        nullable=nullable,
        index=True,
    )


class Identity(Model, table=True):
    """An account at an OAuth / OpenID Connect provider that signs in as this user.

    `subject` is the provider's stable id for the account (`sub`, GitHub's numeric id),
    never the email, which can change hands. `email` is what the provider said at link
    time, kept to show the user which account it is.
    """

    __tablename__ = "oauth_identity"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: str = id_field(IDENTITY_ID_PREFIX)
    user_id: str = Field(sa_column=_user_id())
    provider: str = Field(sa_type=String(PROVIDER_MAX_LENGTH))
    subject: str = Field(sa_type=String(SUBJECT_MAX_LENGTH))
    email: str | None = Field(default=None, sa_type=String(EMAIL_MAX_LENGTH))
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OAuthFlow(Model, table=True):
    """One OAuth sign-in or link in progress, from authorize to callback (minutes); rows
    past their expiry are purged when new flows start.

    Looked up by the SHA-256 of its `state` and spent once (`used_at`), so a replayed
    callback finds it used. `user_id` is set for a link flow (the signed-in user who
    started it); `browser_hash` is the SHA-256 of the cookie that binds a sign-in flow to
    the browser that started it.
    """

    __tablename__ = "oauth_flow"

    id: str = id_field(FLOW_ID_PREFIX)
    state_hash: str = Field(sa_type=String(HASH_LENGTH), unique=True)
    provider: str = Field(sa_type=String(PROVIDER_MAX_LENGTH))
    nonce: str = Field(sa_type=String(SECRET_MAX_LENGTH))
    code_verifier: str = Field(sa_type=String(SECRET_MAX_LENGTH))
    redirect_uri: str | None = Field(default=None, sa_type=String(REDIRECT_MAX_LENGTH))
    user_id: str | None = Field(default=None, sa_column=_user_id(nullable=True))
    browser_hash: str | None = Field(default=None, sa_type=String(HASH_LENGTH))
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}
    )
    expires_at: datetime = Field(
        sa_type=UTCDateTime, sa_column_kwargs={"nullable": False}, index=True
    )
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
