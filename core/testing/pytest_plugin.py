"""The `courtyard` pytest plugin: fixtures for testing a plugin against a real app.

Registered through the `pytest11` entry point, so installing Courtyard makes these
fixtures available in any test suite (pytest-asyncio is needed for the async ones):

- `courtyard_plugins`: which plugins the app enables ("user,notes"); override it in your
  `conftest.py`. Default: every installed plugin.
- `courtyard_settings` / `courtyard_plugin_settings`: core settings and per-plugin
  settings for the app; override to change them.
- `courtyard_database_url`: one database for the whole test session — SQLite in a
  temporary folder, or a fresh PostgreSQL database when COURTYARD_TEST_DATABASE_URL is set
  (an unreachable server fails the run).
- `courtyard_app`: the app, migrated and started (lifespan run); every table is emptied
  after each test, so tests do not see each other's rows.
- `courtyard_client`: an httpx.AsyncClient speaking to that app.
- `act_as(user_id, *roles)`: headers that make a request come from that principal, with
  no authentication plugin needed (the `user` plugin still checks the account exists).
- `make_user(email=None, *, name=None, role=None, verified=True, active=True)` and
  `make_admin(...)`: a real account, made and committed by the app's `user` plugin (which
  must be enabled); `act_as(user.id)` then acts as it, with the account's role.
- `assert_plugin_conforms(name)` (import it from `core.testing`): the plugin contract.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import inspect, text

from core.app import create_app
from core.db import metadata
from core.kernel import Kernel
from core.migrator import Migrator
from core.settings import CoreSettings
from core.testing.databases import PG_ENV, fresh_database
from core.testing.principal import principal_headers, trust_test_principals
from core.testing.users import MakeUser

if TYPE_CHECKING:
    import httpx

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # installed without the `testing` extra: the sync fixtures still work
    async_fixture = pytest.fixture  # type: ignore[assignment]


@pytest.fixture
def courtyard_plugins() -> str | None:
    """The plugins the app enables, comma-separated; None = every installed plugin."""
    return None


@pytest.fixture
def courtyard_settings() -> dict[str, Any]:
    """Core settings for the app (besides the database and the plugins)."""
    return {}


@pytest.fixture
def courtyard_plugin_settings() -> dict[str, dict[str, Any]]:
    """Settings per plugin name, e.g. {"notes": {"max_per_user": 3}}."""
    return {}


@pytest.fixture(scope="session")
def courtyard_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One empty database for the test session (see the module docstring)."""
    backend = "postgresql" if os.environ.get(PG_ENV) else "sqlite"
    folder: Path = tmp_path_factory.mktemp("courtyard-db")
    manager = fresh_database(backend, folder)
    loop = asyncio.new_event_loop()
    try:
        url = loop.run_until_complete(manager.__aenter__())
        yield url
        loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


def _settings(url: str, plugins: str | None, overrides: dict[str, Any]) -> CoreSettings:
    values: dict[str, Any] = {"env": "test", "database_url": url, **overrides}
    if plugins is not None:
        values["enabled_plugins"] = plugins
    return CoreSettings(**values)


@pytest.fixture(scope="session")
def _courtyard_migrated() -> set[tuple[str, str | None]]:
    """(database, plugin selection) pairs already migrated in this session."""
    return set()


@async_fixture
async def courtyard_app(
    _courtyard_migrated: set[tuple[str, str | None]],
    courtyard_database_url: str,
    courtyard_plugins: str | None,
    courtyard_settings: dict[str, Any],
    courtyard_plugin_settings: dict[str, dict[str, Any]],
) -> AsyncIterator[FastAPI]:
    """The app, migrated and running; its tables are emptied after the test."""
    settings = _settings(courtyard_database_url, courtyard_plugins, courtyard_settings)
    if (courtyard_database_url, courtyard_plugins) not in _courtyard_migrated:
        await Migrator(Kernel.build(settings)).upgrade()  # once per selection, not per test
        _courtyard_migrated.add((courtyard_database_url, courtyard_plugins))
    app = create_app(settings, plugin_settings=courtyard_plugin_settings)
    trust_test_principals(app)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await _empty_tables(settings)


async def _empty_tables(settings: CoreSettings) -> None:
    """Delete every row of the app's tables, children before parents."""
    from core.db.engine import create_engine

    engine = create_engine(settings.database_url, settings, migrations=True)
    try:
        async with engine.begin() as connection:
            present = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            for table in reversed(metadata.sorted_tables):
                if table.name in present:
                    await connection.execute(text(f'DELETE FROM "{table.name}"'))
    finally:
        await engine.dispose()


@async_fixture
async def courtyard_client(courtyard_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking ASGI to `courtyard_app`."""
    try:  # imported here: a pytest run that never asks for this fixture needs no httpx
        import httpx
    except ImportError:
        message = "courtyard_client needs httpx: pip install 'courtyard[testing]'"
        pytest.fail(message, pytrace=False)

    transport = httpx.ASGITransport(app=courtyard_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def act_as() -> Callable[..., dict[str, str]]:
    """`act_as(user_id, "admin")` → headers making a request come from that principal."""
    return principal_headers


@pytest.fixture
def make_user(courtyard_app: FastAPI) -> MakeUser:
    """`await make_user()` → a new, verified, active account with the `user` role."""
    return MakeUser(courtyard_app, "user")


@pytest.fixture
def make_admin(courtyard_app: FastAPI) -> MakeUser:
    """`await make_admin()` → a new, verified, active account with the `admin` role."""
    return MakeUser(courtyard_app, "admin")
