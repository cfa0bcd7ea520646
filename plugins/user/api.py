"""The `user` plugin's public surface: the only module other plugins may import.

A plugin that lists `"user"` in its `requires` declares what it uses of this plugin as
inputs of its own container, named `user_<provider>`, and the core connects them:

    class NotesContainer(containers.DeclarativeContainer):
        user_directory = providers.Dependency()  # builds a `UserDirectory`
        user_accounts = providers.Dependency()  # an `AccountReader`

A directory is bound to the caller's unit of work (a session from `Database`):

    async with database.write_sessions() as session:
        users: UserDirectory = container.user_directory(session=session)
        account = await users.create(email, name)
        ...  # more work in the same transaction
        await session.commit()  # the user and your rows land together; `user_created` fires now

A directory never commits: what it changes becomes visible, and its events fire, when the
caller commits (a rolled-back transaction or savepoint fires nothing). It raises the core's
errors: `NotFoundError` for an unknown or soft-deleted user, `ConflictError` for an email
that is taken; the refused insert ran in a savepoint, so the caller's other work stands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

USER_ID_PREFIX = "usr"
EMAIL_MAX_LENGTH = 320  # RFC 3696 (errata): 64 for the local part, @, 255 for the domain
NAME_MAX_LENGTH = 200  # the most any deployment may allow (`COURTYARD_USER__MAX_NAME_LENGTH`)

Role = Literal["user", "admin"]
ROLES: frozenset[str] = frozenset({"user", "admin"})


class User(BaseModel):
    """A user account as every other plugin and every API response sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    name: str
    role: Role
    is_active: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class AccountReader(Protocol):
    """The account check of every authenticated request, outside any unit of work
    (`user_accounts`). Read from the primary: replication lag must not delay a
    deactivation."""

    async def active(self, user_id: str) -> User | None:
        """The user if it is live and active; None otherwise (unknown, deleted, inactive)."""
        ...


class UserDirectory(Protocol):
    """What other plugins may do with user accounts, in the caller's unit of work."""

    async def get(self, user_id: str) -> User:
        """The user with this id; NotFoundError when unknown, malformed or soft-deleted."""
        ...

    async def find(self, user_id: str) -> User | None:
        """The live user (active or not) with this id; None if unknown, malformed or deleted."""
        ...

    async def find_by_email(self, email: str) -> User | None:
        """The live user (active or not) with this email, compared case-insensitively."""
        ...

    async def get_by_email(self, email: str) -> User:
        """The live user with this email, compared case-insensitively; NotFoundError if none."""
        ...

    async def active_account(self, user_id: str) -> User | None:
        """The user if it is live and active; None otherwise (unknown, deleted, inactive)."""
        ...

    async def hold_active(self, user_id: str) -> User | None:
        """As `active_account`, and the account stays as read until the caller's transaction
        ends: a change to it under way is waited for (and seen), one that comes later waits
        for the caller. For work that must not outlive a deactivation (opening a session)."""
        ...

    async def create(self, email: str, name: str) -> User:
        """A new active user with role `user`; ConflictError when the email is taken."""
        ...

    async def mark_email_verified(self, user_id: str) -> User:
        """Record that the user proved they own their email address."""
        ...

    async def set_active(self, user_id: str, active: bool) -> User:
        """Activate or deactivate the user; ConflictError for the last active admin."""
        ...
