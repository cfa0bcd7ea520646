"""The Courtyard test kit (the `courtyard` pytest plugin) gives the app, the client and
`act_as`; these fixtures choose the plugins and make users through the `user` plugin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count

import pytest
from fastapi import FastAPI

from plugins.user.api import User

MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
def courtyard_plugins() -> str:
    return "user,notes"


@pytest.fixture
def make_user(courtyard_app: FastAPI) -> MakeUser:
    """`await make_user()` → a new active user, created through the user plugin's service."""
    numbers = count(1)

    async def make(name: str | None = None) -> User:
        number = next(numbers)
        service = courtyard_app.state.kernel.container_of("user").service()
        user: User = await service.create(f"user{number}@example.com", name or f"User {number}")
        return user

    return make
