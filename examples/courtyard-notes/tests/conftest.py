"""The Courtyard test kit (the `courtyard` pytest plugin) gives the app, the client,
`make_user` (real accounts, made by the `user` plugin) and `act_as`; this file only
chooses the plugins the app enables."""

from __future__ import annotations

import pytest


@pytest.fixture
def courtyard_plugins() -> str:
    return "user,notes"
