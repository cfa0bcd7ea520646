"""Making real user accounts in a plugin's tests (the kit's `make_user` and `make_admin`).

The core never imports a plugin, so the accounts are made by the app under test's own
`user` plugin: its service, found in the kernel by the plugin's name, as its HTTP API and
its `courtyard users` commands make them. Each account is committed (its `user_created`
event fires, and `user_updated` once more when the account is then verified or
deactivated), so the app sees it exactly as one signed up; `act_as(user.id)` then acts as
it, with the role the account has.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from fastapi import FastAPI


class MakeUser:
    """`await make(...)` → a new account with `role` unless told otherwise. Emails and
    names left out are numbered per test: `user1@example.com` and "User 1" from
    `make_user`, `admin1@example.com` and "Admin 1" from `make_admin`.

    The type of both fixtures, for a test's annotations. The account comes back as the
    `user` plugin's `plugins.user.api.User`, typed `Any` here (the core imports no plugin):
    annotate it `User` in your tests.
    """

    def __init__(self, app: FastAPI, role: str) -> None:
        self.app = app
        self.role = role
        self.numbers = count(1)

    async def __call__(
        self,
        email: str | None = None,
        *,
        name: str | None = None,
        role: str | None = None,
        verified: bool = True,
        active: bool = True,
    ) -> Any:
        users = self._service()
        number = next(self.numbers)
        email = email or f"{self.role}{number}@example.com"
        name = name or f"{self.role.capitalize()} {number}"
        user = await users.create(email, name, role or self.role)
        changes: dict[str, bool] = {}
        if verified:
            changes["email_verified"] = True
        if not active:
            changes["is_active"] = False
        if changes:
            user = await users.update(user.id, changes)
        return user

    def _service(self) -> Any:
        kernel = self.app.state.kernel
        if "user" not in kernel.plugin_names:
            pytest.fail(
                "make_user and make_admin need the 'user' plugin: add it to the "
                f"`courtyard_plugins` fixture (enabled: {', '.join(kernel.plugin_names)})",
                pytrace=False,
            )
        return kernel.container_of("user").service()
