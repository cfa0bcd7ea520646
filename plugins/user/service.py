"""What the HTTP API and the command line do with accounts: each call one unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db import Database, Page, PageParams, utcnow
from core.errors import NotFoundError
from core.identity import Principal
from plugins.user.api import User
from plugins.user.directory import AccountDirectory
from plugins.user.repository import UserRepository
from plugins.user.schemas import MemberCounts, UserFilter
from plugins.user.settings import UserSettings

Clock = Callable[[], datetime]


class UserService:
    """Opens a session per call, applies `AccountDirectory`'s rules in it and, for a
    change, commits (the change's event fires then). Reads that may lag a moment (an
    admin's listing, a profile) come from a replica when one is configured; reads an
    operator acts on come from the primary."""

    def __init__(
        self, database: Database, settings: UserSettings, hooks: Any, clock: Clock = utcnow
    ) -> None:
        self.database = database
        self.settings = settings
        self.hooks = hooks
        self.clock = clock  # what "now" is: the container's, which tests replace

    # Reads

    async def get(self, user_id: str) -> User:
        async with self._reading() as users:
            return await users.get(user_id)

    async def visible_to(self, principal: Principal, user_id: str) -> User:
        """The user, if `principal` may see it (itself, or an admin); 404 otherwise."""
        if principal.user_id != user_id and not principal.has_role("admin"):
            raise NotFoundError(f"User {user_id} not found", code="user.not_found")
        return await self.get(user_id)

    async def list(self, where: UserFilter, page: PageParams) -> Page[User]:
        async with self._reading() as users:
            return await users.list(where, page)

    async def count_members(self) -> MemberCounts:
        """Live users: all of them, and those created since 00:00 UTC on the 1st of this
        month, on Monday of this week and today.

        The four counts run at once, each on a read session of its own: a session (and its
        connection) serves one task at a time, so sharing one would make them wait in turn
        or fail."""
        today = self.clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = {
            "total": None,
            "month": today.replace(day=1),
            "week": today - timedelta(days=today.weekday()),
            "today": today,
        }
        counts = await asyncio.gather(*(self._count_live(start) for start in since.values()))
        return MemberCounts(**dict(zip(since, counts, strict=True)))

    async def get_by_email(self, email: str) -> User:
        """The live user with `email`, read on the primary (an operator names accounts by
        email and acts on the answer at once)."""
        async with self.database.primary_read_sessions() as session:
            return await self._directory(session).get_by_email(email)

    # Changes

    async def create(self, email: str, name: str, role: str = "user") -> User:
        async with self._changing() as users:
            return await users.create(email, name, role)

    async def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Apply `changes` (field → new value); fields that already hold the value are no change."""
        async with self._changing() as users:
            return await users.update(user_id, changes)

    async def update_by_email(self, email: str, changes: dict[str, Any]) -> User:
        """`update` for the live user with `email`, found in the same transaction."""
        async with self._changing() as users:
            return await users.update((await users.get_by_email(email)).id, changes)

    async def delete(self, user_id: str) -> None:
        async with self._changing() as users:
            await users.delete(user_id)

    async def restore(self, user_id: str) -> User:
        """Bring a soft-deleted user back; 409 if another live user has the email meanwhile."""
        async with self._changing() as users:
            return await users.restore(user_id)

    async def set_active(self, user_id: str, active: bool) -> User:
        return await self.update(user_id, {"is_active": active})

    # Units of work

    def _directory(self, session: Any) -> AccountDirectory:
        return AccountDirectory(session, self.settings, self.hooks)

    async def _count_live(self, created_since: datetime | None) -> int:
        async with self.database.read_sessions() as session:
            return await UserRepository(session).count_live(created_since=created_since)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AccountDirectory]:
        async with self.database.read_sessions() as session:
            yield self._directory(session)

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[AccountDirectory]:
        """A transaction on the primary, committed when the block ends without an error."""
        async with self.database.write_sessions() as session:
            yield self._directory(session)
            await session.commit()
