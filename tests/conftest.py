"""Fixtures shared by every test: clean configuration, databases, installed test plugins, apps."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.app import create_app
from core.migrator import Migrator
from core.settings import CoreSettings
from tests.support.databases import MigratedCopies, backends, fresh_database
from tests.support.distributions import install_set
from tests.support.hashing import hasher_at_test_cost
from tests.support.plugin_selection import ENABLED, suite_plugins

BUILD_ROOT = Path(__file__).resolve().parent / "fixtures" / "build"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No COURTYARD_* setting leaks in from the developer's shell, `.env` or `courtyard.toml`,
    and the apps the test builds enable the suite's plugins only, whatever else is installed
    (`tests.support.plugin_selection`; `use_dists` adds the test distributions it installs)."""
    for key in list(os.environ):
        if key.startswith("COURTYARD_") and not key.startswith("COURTYARD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(ENABLED, suite_plugins())
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def argon2_at_test_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Password hashing at test cost, unless the test is marked `real_argon2`
    (`tests.support.hashing`). Apps the test runs in other processes hash for real."""
    if request.node.get_closest_marker("real_argon2") is None:
        monkeypatch.setattr("plugins.auth.passwords.PasswordHasher", hasher_at_test_cost)


@pytest.fixture(scope="session")
def dists() -> dict[str, Path]:
    """Folders holding the installed test plugin distributions, by set name."""
    return {
        name: install_set(name, BUILD_ROOT)
        for name in ("main", "clone", "broken", "testauth", "userwatch", "oldcore")
    }


@pytest.fixture
def use_dists(monkeypatch: pytest.MonkeyPatch, dists: dict[str, Path]) -> Callable[..., None]:
    """Put installed test distributions on sys.path for this test only; their plugins join
    the ones the test's apps enable unless told otherwise."""
    in_use: list[Path] = []

    def use(*set_names: str) -> None:
        for name in set_names:
            monkeypatch.syspath_prepend(str(dists[name]))
            in_use.append(dists[name])
        monkeypatch.setenv(ENABLED, suite_plugins(in_use))

    return use


@pytest.fixture
def main_plugins(use_dists: Callable[..., None]) -> None:
    """alpha and beta installed."""
    use_dists("main")


@pytest.fixture(params=backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each backend under test."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


def make_settings(database_url: str, **overrides: Any) -> CoreSettings:
    values: dict[str, Any] = {"env": "test", "database_url": database_url}
    values.update(overrides)
    return CoreSettings(**values)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an HTTP client speaking ASGI to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def migrate(settings: CoreSettings) -> None:
    from core.kernel import Kernel

    await Migrator(Kernel.build(settings)).upgrade()


AppFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def migrated_copies(tmp_path_factory: pytest.TempPathFactory) -> MigratedCopies:
    """Migrated SQLite template databases, one per plugin selection, for this process."""
    return MigratedCopies(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def app_client(database_url: str, migrated_copies: MigratedCopies) -> AppFactory:
    """`async with app_client(enabled_plugins="alpha", ...) as client:` — migrated, running.

    An empty SQLite database becomes a copy of one migrated for the same plugins
    (`MigratedCopies`); any other database is migrated for real."""

    @asynccontextmanager
    async def factory(
        *, upgrade: bool = True, plugin_settings: dict[str, Any] | None = None, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(database_url, **overrides)
        if upgrade and settings.database_url == database_url:
            await migrated_copies.migrate(settings)
        elif upgrade:
            await migrate(settings)
        app = create_app(settings, plugin_settings=plugin_settings)
        async with running(app) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return factory
