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

To show many users (a page of notes with their authors), ask for them all at once:
`await users.get_many(ids)` is one query however many ids, where a `get` per row is one
query each.

A table that belongs to a user points at the `user` table through the constants below,
never through the user plugin's models:

    owner_id: str = Field(
        sa_column=Column(
            String(USER_ID_LENGTH), ForeignKey(USER_ID_FK, ondelete="CASCADE"), nullable=False
        )
    )

A directory never commits: what it changes becomes visible, and its events fire, when the
caller commits (a rolled-back transaction or savepoint fires nothing). It raises the core's
errors: `NotFoundError` for an unknown or soft-deleted user, `ConflictError` for an email
that is taken; the refused insert ran in a savepoint, so the caller's other work stands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from core.db.ids import ID_MAX_LENGTH

USER_ID_PREFIX = "usr"  # user ids look like `usr_01JD8X…`
USER_ID_FK = "user.id"  # the column a foreign key to a user names
USER_ID_LENGTH = ID_MAX_LENGTH  # the length of `user.id`: give a foreign key column the same
EMAIL_MAX_LENGTH = 320  # RFC 3696 (errata): 64 for the local part, @, 255 for the domain
NAME_MAX_LENGTH = 200  # the most any deployment may allow (`COURTYARD_USER__MAX_NAME_LENGTH`)

Role = Literal["user", "admin"]
ROLES: frozenset[str] = frozenset({"user", "admin"})


class User(BaseModel):
    """A user account as every other plugin and every API response sees it."""

    model_config = ConfigDict(frozen=True)

    # The examples (in the API's documentation) are an account just signed up.
    id: str = Field(examples=["usr_01JP9ZMQCNR1TMCDJNVSVQHRET"])
    email: str = Field(examples=["ada@example.com"])
    name: str = Field(examples=["Ada Lovelace"])
    role: Role = Field(examples=["user"])
    is_active: bool = Field(examples=[True])
    email_verified: bool = Field(examples=[False])
    created_at: datetime = Field(examples=["2025-03-14T09:26:53.589000Z"])
    updated_at: datetime = Field(examples=["2025-03-14T09:26:53.589000Z"])
    deleted_at: datetime | None = Field(None, examples=[None])


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

    async def get_many(
        self, user_ids: Iterable[str], *, include_deleted: bool = False
    ) -> Mapping[str, User]:
        """The users with these ids, by id, in one query: live ones (active or not), and
        soft-deleted ones too with `include_deleted=True`. An id that is unknown,
        malformed or (without `include_deleted`) deleted is absent from the answer;
        repeated ids are asked for once."""
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

    async def create(self, email: str, name: str, role: Role = "user") -> User:
        """A new active user with `role`; ConflictError when the email is taken,
        InvalidInputError naming the field for an address or name the plugin refuses."""
        ...

    async def mark_email_verified(self, user_id: str) -> User:
        """Record that the user proved they own their email address."""
        ...

    async def set_active(self, user_id: str, active: bool) -> User:
        """Activate or deactivate the user; ConflictError for the last active admin."""
        ...
