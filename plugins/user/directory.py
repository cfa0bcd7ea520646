"""Domain rules for user accounts (uniqueness, the last admin, events), applied in the
caller's unit of work: what `UserService` runs in a transaction of its own, and what other
plugins get as their `UserDirectory`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.db import AppSession, Page, PageParams, is_valid_id
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.hooks import emit
from plugins.user.api import ROLES, USER_ID_PREFIX, User
from plugins.user.models import UserRecord, email_key
from plugins.user.repository import AccountRows, UserRepository
from plugins.user.schemas import UserFilter, check_email, check_name
from plugins.user.settings import UserSettings

# Ids asked for per query: bound parameters stay far below every database's limit
# (SQLite's 32 766, asyncpg's 32 767).
IDS_PER_QUERY = 1000


def to_user(record: UserRecord) -> User:
    return User.model_validate(record, from_attributes=True)


class AccountDirectory:
    """Everything that can happen to a user account, in `session`'s transaction.
    Implements `api.UserDirectory`.

    It never commits: the caller's commit makes a change visible, and the change's event
    is queued to fire once that commit succeeded.
    """

    def __init__(self, session: AppSession, settings: UserSettings, hooks: Any) -> None:
        self.session = session
        self.settings = settings
        self.hooks = hooks
        self.users = UserRepository(session)
        self.accounts = AccountRows(session)

    # Reads

    async def get(self, user_id: str, *, include_deleted: bool = False) -> User:
        return to_user(await self._record(user_id, include_deleted=include_deleted))

    async def find(self, user_id: str) -> User | None:
        return await self.accounts.live(user_id)

    async def find_by_email(self, email: str) -> User | None:
        return await self.accounts.live_by_email(email)

    async def get_many(
        self, user_ids: Iterable[str], *, include_deleted: bool = False
    ) -> Mapping[str, User]:
        """One query for any number of ids (several only past `IDS_PER_QUERY`, which keeps
        every database under its limit of bound parameters)."""
        wanted = sorted({i for i in user_ids if is_valid_id(i, USER_ID_PREFIX)})
        found: dict[str, User] = {}
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[start : start + IDS_PER_QUERY]
            stmt = self.users.select(include_deleted=include_deleted)
            rows = await self.session.exec(stmt.where(col(UserRecord.id).in_(chunk)))
            found.update((record.id, to_user(record)) for record in rows)
        return found

    async def get_by_email(self, email: str) -> User:
        user = await self.accounts.live_by_email(email)
        if user is None:
            raise NotFoundError(f"No user with email {email}", code="user.not_found")
        return user

    async def active_account(self, user_id: str) -> User | None:
        return await self.accounts.active(user_id)

    async def hold_active(self, user_id: str) -> User | None:
        return await self.accounts.hold_active(user_id)

    async def list(self, where: UserFilter, page: PageParams) -> Page[User]:
        rows = await self.users.search(where, limit=page.limit, cursor=page.cursor)
        return Page[User].of(rows, to_user)

    # Changes

    async def create(self, email: str, name: str, role: str = "user") -> User:
        try:
            email = check_email(email)
        except ValueError as exc:
            raise InvalidInputError("email", str(exc)) from None
        name = self._check_name(name)
        self._check_role(role)
        if await self.users.get_by_email(email) is not None:
            raise _email_taken(email)
        record = UserRecord(email=email, email_key=email_key(email), name=name, role=role)
        try:
            # A savepoint: losing the race undoes this insert only, not the caller's work.
            async with self.session.begin_nested():
                await self.users.create(record)
        except IntegrityError:  # a concurrent request took the email first
            raise _email_taken(email) from None
        user = to_user(record)
        self._on_commit(partial(emit, self.hooks.user_created, user=user))
        return user

    async def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Apply `changes` (field → new value); fields that already hold the value are no change."""
        if "name" in changes:
            changes = {**changes, "name": self._check_name(changes["name"])}
        if "role" in changes:
            self._check_role(changes["role"])
        demoting = changes.get("role", "admin") != "admin" or changes.get("is_active") is False
        admins = await self.users.lock_active_admins() if demoting else []
        record = await self._record(user_id, for_update=True)
        changes = {k: v for k, v in changes.items() if getattr(record, k) != v}
        if not changes:
            return to_user(record)
        if demoting:
            self._keep_an_admin(record, admins, "demote or deactivate")
        await self.users.update(record, changes)
        user = to_user(record)
        self._on_commit(partial(emit, self.hooks.user_updated, user=user, changes=changes))
        return user

    async def delete(self, user_id: str) -> None:
        admins = await self.users.lock_active_admins()
        record = await self._record(user_id, for_update=True)
        self._keep_an_admin(record, admins, "delete")
        await self.users.soft_delete(record)
        self._on_commit(partial(emit, self.hooks.user_deleted, user_id=record.id))

    async def restore(self, user_id: str) -> User:
        """Bring a soft-deleted user back; 409 if another live user has the email meanwhile."""
        record = await self._record(user_id, include_deleted=True, for_update=True)
        if record.deleted_at is None:
            return to_user(record)
        email = record.email
        try:
            async with self.session.begin_nested():
                await self.users.restore(record)
        except IntegrityError:
            raise _email_taken(email) from None
        user = to_user(record)
        self._on_commit(partial(emit, self.hooks.user_restored, user_id=record.id))
        return user

    async def mark_email_verified(self, user_id: str) -> User:
        return await self.update(user_id, {"email_verified": True})

    async def set_active(self, user_id: str, active: bool) -> User:
        return await self.update(user_id, {"is_active": active})

    # Rules

    async def _record(
        self, user_id: str, *, include_deleted: bool = False, for_update: bool = False
    ) -> UserRecord:
        record = None
        if is_valid_id(user_id, USER_ID_PREFIX):
            get = self.users.get_for_update if for_update else self.users.get
            record = await get(user_id, include_deleted=include_deleted)
        if record is None:
            raise _not_found(user_id)
        return record

    def _check_name(self, name: str) -> str:
        """The name as stored (trimmed); the same rules as the HTTP schemas, plus the limit."""
        try:
            name = check_name(name)
        except ValueError as exc:
            raise InvalidInputError("name", str(exc)) from None
        limit = self.settings.max_name_length
        if len(name) > limit:
            raise InvalidInputError(
                "name", f"String should have at most {limit} characters", kind="string_too_long"
            )
        return name

    def _check_role(self, role: str) -> None:
        if role not in ROLES:
            raise InvalidInputError("role", f"Input should be one of: {', '.join(sorted(ROLES))}")

    def _keep_an_admin(self, record: UserRecord, admins: Sequence[str], action: str) -> None:
        """Refuse to take away the last active admin (nobody could administer afterwards).

        `admins` are the active admins' ids, locked by the caller before `record` was.
        """
        if record.role != "admin" or not record.is_active:
            return
        others = [i for i in admins if i != record.id]
        if not others:
            raise ConflictError(
                f"Cannot {action} {record.email}: it is the last active admin. "
                "Promote another user first.",
                code="user.last_admin",
            )

    def _on_commit(self, event: Any) -> None:
        """Queue `event` to fire once the caller's commit succeeded."""
        self.session.after_commit(event)


def _not_found(user_id: str) -> NotFoundError:
    return NotFoundError(f"User {user_id} not found", code="user.not_found")


def _email_taken(email: str) -> ConflictError:
    return ConflictError(f"The email {email} is already in use", code="user.email_taken")
