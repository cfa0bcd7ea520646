"""An app with the `user` plugin, a test-only authenticator and a third-party listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from plugins.user.api import User
from tests.support.statements import sent_statements

USERS = "/api/v1/users"
PLUGINS = "user,testauth,userwatch"


def as_user(user: dict[str, Any] | str) -> dict[str, str]:
    """Headers that make the test authenticator treat the request as coming from `user`."""
    return {"X-Test-User": user if isinstance(user, str) else user["id"]}


@dataclass
class UserApp:
    client: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    async def create(
        self, email: str, name: str = "Test User", *, role: str = "user", active: bool = True
    ) -> dict[str, Any]:
        """A user made through the plugin's service, as an operator's CLI would."""
        service = self.app.state.kernel.container_of("user").service()
        user: User = await service.create(email, name, role)
        if not active:
            user = await service.set_active(user.id, False)
        return user.model_dump(mode="json")

    async def events(self) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/userwatch/events")
        assert response.status_code == 200
        events: list[dict[str, Any]] = response.json()
        return events

    @asynccontextmanager
    async def counting_queries(self) -> AsyncIterator[list[str]]:
        """The SQL statements the app sends to the database inside the block."""
        async with sent_statements(self.app.state.database.write_engine) as statements:
            yield statements

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows straight from the database, to check what was really stored."""
        async with self.app.state.database.write_engine.connect() as connection:
            result = await connection.execute(text(query), params)
            return [tuple(row) for row in result.all()]


@pytest.fixture
def user_dists(use_dists: Callable[..., None]) -> None:
    use_dists("testauth", "userwatch")


@pytest.fixture
async def users(user_dists: None, app_client: Any) -> AsyncIterator[UserApp]:
    """A migrated, running app; `users.client` speaks HTTP to it."""
    async with app_client(enabled_plugins=PLUGINS) as client:
        yield UserApp(client)


@pytest.fixture
async def admin(users: UserApp) -> dict[str, Any]:
    return await users.create("admin@example.com", "Ada Admin", role="admin")


@pytest.fixture
async def alice(users: UserApp) -> dict[str, Any]:
    return await users.create("Alice@Example.com", "Alice")


@pytest.fixture
async def bob(users: UserApp) -> dict[str, Any]:
    return await users.create("bob@example.com", "Bob")
