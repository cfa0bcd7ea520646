"""The test kit plugin authors get (`core.testing`): fixtures, databases migrated once per
plugin selection, and the contract check; and the project's own `app_client` on the same
databases, with argon2 at a test-only cost.

The fixtures and the contract check are exercised the way an author meets them: the
fixtures through a separate pytest run over a test file written here (the kit is loaded
through its `pytest11` entry point, as in any project that installs Courtyard), and the
contract check on real installed plugins — the built-ins, and a fixture distribution that
breaks every rule it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import CoreSettings
from core.testing import PluginConformanceError, assert_plugin_conforms
from core.testing import databases as kit_databases
from core.testing.databases import (
    PG_ENV,
    MigratedDatabases,
    backends,
    empty_tables,
    fresh_database,
)
from tests.conftest import BUILD_ROOT, AppFactory, make_settings
from tests.support.databases import execute, fetch, tables
from tests.support.distributions import install_set

PROJECT_ROOT = Path(__file__).resolve().parents[2]

AUTHOR_TESTS = """
import pytest
from sqlalchemy import func, select


@pytest.fixture
def courtyard_plugins():
    return "user"


async def make_admin(app):
    service = app.state.kernel.container_of("user").service()
    return await service.create("ada@example.com", "Ada", "admin")


async def test_an_admin_lists_users(courtyard_app, courtyard_client, act_as):
    admin = await make_admin(courtyard_app)
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id, "admin"))
    assert response.status_code == 200, response.text
    assert [u["email"] for u in response.json()["items"]] == ["ada@example.com"]


async def test_the_previous_tests_rows_are_gone(courtyard_app, courtyard_client, act_as):
    admin = await make_admin(courtyard_app)  # would be a 409 if the first one were still there
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id, "admin"))
    assert len(response.json()["items"]) == 1


async def test_a_stranger_is_unauthenticated(courtyard_client, act_as):
    unknown = act_as("usr_01JD8X0000000000000000000A", "admin")
    assert (await courtyard_client.get("/api/v1/users/me", headers=unknown)).status_code == 401
    assert (await courtyard_client.get("/api/v1/users/me")).status_code == 401


def test_only_the_chosen_plugins_are_enabled(courtyard_app):
    assert courtyard_app.state.kernel.plugin_names == ["user"]
"""


def run_pytest(folder: Path, *, pg: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    if pg:
        env[PG_ENV] = os.environ[PG_ENV]
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("backend", backends())
def test_an_author_tests_a_plugin_with_the_kits_fixtures(tmp_path: Path, backend: str) -> None:
    """The fixtures give a migrated, running app with the chosen plugins, a client, a way to
    act as a user without `auth`, and tests that do not see each other's rows — on SQLite,
    and on a fresh PostgreSQL database when the variable names a server."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))

    result = run_pytest(tmp_path, pg=backend == "postgresql")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("name", ["user", "mail", "auth"])
def test_the_built_in_plugins_conform(name: str, backend: str) -> None:
    assert_plugin_conforms(name, backend=backend)


def test_an_unknown_plugin_is_reported() -> None:
    with pytest.raises(PluginConformanceError, match="no plugin 'nosuch' is installed"):
        assert_plugin_conforms("nosuch")


def test_every_broken_rule_is_reported_in_one_error(tmp_path: Path) -> None:
    """A plugin that reaches into another's internals, uses an api it does not require,
    names a table without its prefix and mounts an undocumented route hears about all of
    it at once, each problem on its own line."""
    rogue = install_set("rogue", BUILD_ROOT)
    check = "from core.testing import assert_plugin_conforms; assert_plugin_conforms('rogue')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(rogue), str(PROJECT_ROOT)])

    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    message = result.stderr.split("PluginConformanceError: ", 1)[1]
    lines = message.strip().splitlines()
    assert lines[0] == "plugin 'rogue' does not conform:"
    assert sorted(lines[1:]) == sorted(
        [
            "- models.py:5 imports plugins.user.api.User without listing 'user' in `requires`",
            "- models.py:6 imports plugins.user.service.UserService, an internal module of "
            "plugin 'user'; import only plugins.user.api",
            "- table 'stuff' does not carry the plugin's name (use 'rogue' or 'rogue_…')",
            "- GET /api/v1/rogue/{stuff_id}: no description (give the route a docstring)",
            "- GET /api/v1/rogue/{stuff_id}: names a resource but does not document 404",
        ]
    )


# -- databases migrated once per plugin selection --------------------------------------


@pytest.mark.parametrize("backend", backends())
async def test_emptying_deletes_every_row_and_keeps_the_schema_and_the_revisions(
    backend: str, tmp_path: Path
) -> None:
    """Stops rows (or a counter) leaking from one test into the next, and a schema or the
    record of applied revisions lost between tests. The child's table sorts before its
    parent's, and its foreign key refuses orphans: deleting in name order would fail."""
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if backend == "sqlite" else "SERIAL PRIMARY KEY"
    async with fresh_database(backend, tmp_path) as url:
        for statement in [
            f"CREATE TABLE z_parent (id {serial})",
            "CREATE TABLE a_child (id INTEGER PRIMARY KEY,"
            " parent_id INTEGER NOT NULL REFERENCES z_parent (id))",
            "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
            "INSERT INTO alembic_version VALUES ('c0ffee000001')",
            "INSERT INTO z_parent DEFAULT VALUES",
            "INSERT INTO z_parent DEFAULT VALUES",
            "INSERT INTO a_child VALUES (1, 2)",
        ]:
            await execute(url, statement)

        await empty_tables(url)

        assert await fetch(url, "SELECT count(*) FROM a_child") == [(0,)]
        assert await fetch(url, "SELECT count(*) FROM z_parent") == [(0,)]
        assert await fetch(url, "SELECT version_num FROM alembic_version") == [("c0ffee000001",)]
        assert await tables(url) == {"a_child", "z_parent", "alembic_version"}
        await execute(url, "INSERT INTO z_parent DEFAULT VALUES")
        assert await fetch(url, "SELECT id FROM z_parent") == [(1,)]  # as on a new table


def user_settings(plugins: str) -> Callable[[str], CoreSettings]:
    return lambda url: make_settings(url, enabled_plugins=plugins)


@pytest.mark.parametrize("backend", backends())
async def test_each_plugin_selection_gets_a_database_migrated_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops a migration per test (the cost this saves), and one selection's tables showing
    up in another's schema."""
    ran: list[str] = []
    upgrade = kit_databases.migrate

    async def counted(settings: CoreSettings) -> None:
        ran.append(settings.database_url)
        await upgrade(settings)

    monkeypatch.setattr(kit_databases, "migrate", counted)
    databases = MigratedDatabases(tmp_path)
    try:
        user = (await databases.database_for(backend, user_settings("user"))).database_url
        again = (await databases.database_for(backend, user_settings("user"))).database_url
        both = (await databases.database_for(backend, user_settings("user,auth,mail"))).database_url

        assert again == user
        assert both != user
        assert ran == [user, both]
        assert "user" in await tables(user)
        assert not {t for t in await tables(user) if t.startswith("auth")}
        assert "auth_credential" in await tables(both)

        databases.forget(user)
        other = (await databases.database_for(backend, user_settings("user"))).database_url
        assert other not in (user, both)
        assert ran == [user, both, other]
    finally:
        await databases.close()
    if backend == "postgresql":
        server = os.environ[PG_ENV]
        names = {row[0] for row in await fetch(server, "SELECT datname FROM pg_database")}
        assert not {u.rsplit("/", 1)[1] for u in (user, both, other)} & names


# -- the project's own apps (tests/conftest.py `app_client`) ride on them ----------------

APP_DATABASES: dict[str, str] = {}


def url_of(client: httpx.AsyncClient) -> str:
    """The database the app behind `client` runs on."""
    url: str = client.app.state.kernel.settings.database_url  # type: ignore[attr-defined]
    return url


async def user_rows(client: httpx.AsyncClient) -> list[tuple[Any, ...]]:
    return await fetch(url_of(client), 'SELECT id FROM "user"')


async def test_an_app_writes_a_row_in_the_session_database_of_its_plugins(
    app_client: AppFactory, database_backend: str
) -> None:
    async with app_client(enabled_plugins="user") as client:
        service = client.app.state.kernel.container_of("user").service()  # type: ignore[attr-defined]
        await service.create("ada@example.com", "Ada", "admin")
        assert len(await user_rows(client)) == 1
        APP_DATABASES[database_backend] = url_of(client)


async def test_the_next_test_gets_that_database_emptied(
    app_client: AppFactory, database_backend: str
) -> None:
    """Runs after the test above (same file, same worker): same database, no rows."""
    async with app_client(enabled_plugins="user") as client:
        url = url_of(client)
        assert await user_rows(client) == []
    assert APP_DATABASES.get(database_backend, url) == url


async def test_an_app_sees_only_the_tables_of_its_plugins(
    app_client: AppFactory, database_backend: str, migrated_databases: MigratedDatabases
) -> None:
    await migrated_databases.database_for(database_backend, user_settings("user,auth,mail"))
    async with app_client(enabled_plugins="user") as client:
        found = await tables(url_of(client))
    assert "user" in found
    assert not {t for t in found if t.startswith("auth")}


async def test_a_test_with_a_database_of_its_own_runs_its_apps_there(
    app_client: AppFactory, database_url: str
) -> None:
    async with app_client(enabled_plugins="user") as client:
        assert url_of(client) == database_url
        assert "user" in await tables(database_url)


async def test_an_app_that_is_not_migrated_gets_an_empty_database(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins="user", upgrade=False) as client:
        assert await tables(url_of(client)) == set()


# -- argon2 at a test-only cost, except for tests about hashing ------------------------


async def made_hash(client: httpx.AsyncClient) -> str:
    hasher = client.app.state.kernel.container_of("auth").hasher()  # type: ignore[attr-defined]
    password_hash: str = await hasher.hash("correct horse battery staple")
    assert await hasher.verify(password_hash, "correct horse battery staple")
    return password_hash


async def test_apps_hash_passwords_at_the_test_only_cost(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins="user,auth,mail") as client:
        assert (await made_hash(client)).startswith("$argon2id$v=19$m=8,t=1,p=1$")


@pytest.mark.real_argon2
async def test_a_test_about_hashing_gets_the_configured_cost(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins="user,auth,mail") as client:
        assert (await made_hash(client)).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
