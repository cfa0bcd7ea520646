"""The `user` plugin's public surface: the only module other plugins may import.

A plugin that lists `"user"` in its `requires` gets the user container composed into its
own (declare `user = providers.DependenciesContainer()`), and asks it for a directory
bound to the session it is working in:

    users: UserDirectory = container.user.directory(session=session)
    account = await users.create(email, name)
    ...  # more work in the same transaction
    await session.commit()  # the user and your rows land together; `user_created` fires now

A directory never commits: what it changes becomes visible, and its events fire, when the
caller commits (a rolled-back transaction or savepoint fires nothing). It raises the core's
errors: `NotFoundError` for an unknown or soft-deleted user, `ConflictError` for an email
that is taken; the refused insert ran in a savepoint, so the caller's other work stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection

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
    """Account reads for the paths every request takes (signing in, checking a caller), as
    Core statements outside any ORM session: `container.user.accounts()`. Reads come from
    the primary, or run on `within`: the caller's `AsyncConnection` (`Database.connection()`,
    to share one pool checkout between reads, or `Database.transaction()`, to read under
    the locks the caller holds)."""

    async def active(self, user_id: str, *, within: AsyncConnection | None = None) -> User | None:
        """The user if it is live and active; None otherwise (unknown, deleted, inactive)."""
        ...

    async def live(self, user_id: str, *, within: AsyncConnection | None = None) -> User | None:
        """The user if it is live (active or not); None if unknown, malformed or deleted."""
        ...

    async def live_by_email(
        self, email: str, *, within: AsyncConnection | None = None
    ) -> User | None:
        """The live user (active or not) with this email, compared case-insensitively."""
        ...

    # A plugin whose rows belong to an account (a foreign key to `user.id`) may read the
    # account with them in one statement of its own, one round trip instead of two: it
    # embeds one of these selects (as a subquery or a WITH) and turns the account's columns
    # of the row into a `User`. Each selects every `User` field under its own name (and the
    # email key, which `user()` ignores), with its parameters bound by name; the table and
    # its model stay private.

    def email_key(self, email: str) -> str | None:
        """What `select_live_by_email` compares (`:email_key`); None for an email no account
        can have (too long, control characters), so no need to ask."""
        ...

    def select_live_by_email(self) -> Any:
        """SELECT of the live account (active or not) with the email key `:email_key`."""
        ...

    def select_active_shared(self) -> Any:
        """SELECT of the live, active account `:user_id`, FOR SHARE (PostgreSQL): a change to
        the account committed meanwhile is seen (the row is read again once locked), and one
        that comes later waits for the caller's transaction to end."""
        ...

    def user(self, fields: Mapping[str, Any]) -> User:
        """The `User` of a row holding one of these selects' columns."""
        ...


class UserDirectory(Protocol):
    """What other plugins may do with user accounts."""

    async def get(self, user_id: str) -> User:
        """The user with this id; NotFoundError when unknown, malformed or soft-deleted."""
        ...

    async def active_account(self, user_id: str) -> User | None:
        """The user if it is live and active; None otherwise (unknown, deleted, inactive)."""
        ...

    async def get_by_email(self, email: str) -> User:
        """The live user with this email, compared case-insensitively; NotFoundError if none."""
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
