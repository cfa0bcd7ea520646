"""A plugin uninstalled after it was migrated leaves an *orphaned* row in `alembic_version`:
a revision no installed plugin has. The migration tools keep working for every other
plugin, name the row, and say how to be rid of it; `/health/ready` reports it as degraded.

The `kudos` test plugin (tests/support/kudos.py) is installed into a folder of its own and
migrated with the built-in plugins; running `courtyard` without that folder on its path
(and an app in this process, where it never was) is the plugin uninstalled. The real
console script, against SQLite and PostgreSQL.

Most tests start from the database `courtyard db upgrade` leaves with kudos and the
built-in plugins enabled: that command runs once per backend, and those tests get a copy of
its database (`KudosMigrated`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import AppFactory
from tests.support.courtyard_cli import parse_table, rows_by
from tests.support.databases import PG_ENV, fetch, tables
from tests.support.kudos import (
    BUILT_INS,
    USER_REV,
    WITH_KUDOS,
    courtyard,
    install_kudos,
    ok,
    revision_module,
    write_first_revision,
)

MIGRATING = ["user", "auth", "oauth", "upload"]  # the built-ins with a branch, in order
UPLOAD_REV = "c7e1a4f90001"
ADVICE = (
    "reinstall it and run `courtyard db downgrade <plugin>@base`, or drop its tables by "
    "hand and delete that row from alembic_version"
)


@pytest.fixture(scope="module")
def pristine_kudos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kudos installed, with the first revision of its branch written."""
    folder = tmp_path_factory.mktemp("kudos")
    site = install_kudos(folder / "site")
    write_first_revision(site, f"sqlite+aiosqlite:///{folder / 'scratch.db'}", folder)
    return site


class KudosMigrated:
    """Databases as `courtyard db upgrade` leaves them with kudos and the built-in plugins
    enabled, for the kudos revision of `pristine_kudos` (the one every test's copy has).

    The first test on a backend runs that command, for real, on its own database, which is
    then kept as a template: the next tests' databases become copies of it (SQLite's backup
    API; PostgreSQL's CREATE DATABASE … TEMPLATE), the same schema and the same rows of
    `alembic_version`, at a fraction of the cost of starting `courtyard` again.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._templates: dict[str, str] = {}  # backend: SQLite file or PostgreSQL database

    async def into(self, url: str, *, site: Path, cwd: Path) -> None:
        """Bring the empty database at `url` to that state."""
        target = make_url(url)
        backend = target.get_backend_name()
        template = self._templates.get(backend)
        if template is None:
            ok(courtyard("db", "upgrade", url=url, enabled=WITH_KUDOS, cwd=cwd, site=site))
            template = f"courtyard_t_{uuid.uuid4().hex[:12]}"
            if backend == "sqlite":
                template = str(self._folder / f"{template}.db")
                _sqlite_copy(target.database or "", template)
            else:
                await _on_server(f'CREATE DATABASE "{template}" TEMPLATE "{target.database}"')
            self._templates[backend] = template
        elif backend == "sqlite":
            _sqlite_copy(template, target.database or "")
        else:
            await _on_server(
                f'DROP DATABASE "{target.database}"',
                f'CREATE DATABASE "{target.database}" TEMPLATE "{template}"',
            )

    def drop(self) -> None:
        """Drop the PostgreSQL templates (the SQLite ones go with their folder)."""
        if "postgresql" in self._templates:
            asyncio.run(_on_server(f'DROP DATABASE IF EXISTS "{self._templates["postgresql"]}"'))


def _sqlite_copy(source: str, target: str) -> None:
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(target)) as copy:
        original.backup(copy)


async def _on_server(*statements: str) -> None:
    """Run `statements` on the COURTYARD_TEST_DATABASE_URL server, outside any transaction."""
    server = make_url(os.environ[PG_ENV]).set(drivername="postgresql")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def kudos_migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KudosMigrated]:
    databases = KudosMigrated(tmp_path_factory.mktemp("kudos-migrated"))
    yield databases
    databases.drop()


@pytest.fixture
def site(pristine_kudos: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine_kudos, tmp_path / "site"))


@pytest.fixture
def kudos_rev(site: Path) -> str:
    (path,) = (site / "courtyard_kudos" / "migrations" / "versions").glob("*.py")
    return str(revision_module(path)["revision"])


async def versions(url: str) -> set[str]:
    return {row[0] for row in await fetch(url, "SELECT version_num FROM alembic_version")}


def warning_line(stderr: str, kudos_rev: str) -> str:
    """The one line a command prints on stderr about the orphaned row."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(
        f"courtyard: warning: alembic_version holds revision {kudos_rev} of no installed plugin"
    ), stderr
    assert ADVICE in lines[0]
    return lines[0]


async def test_current_lists_the_orphaned_revision_and_what_to_do(
    site: Path, kudos_rev: str, database_url: str, tmp_path: Path, kudos_migrated: KudosMigrated
) -> None:
    """Stops: `db current` answering an uninstalled plugin with Alembic's traceback."""
    run = partial(courtyard, url=database_url, cwd=tmp_path)
    await kudos_migrated.into(database_url, site=site, cwd=tmp_path)

    current = run("db", "current", enabled=BUILT_INS)

    assert current.returncode == 0, current.stderr
    rows = rows_by(parse_table(current.stdout), "PLUGIN")
    assert rows["(not installed)"] == {
        "PLUGIN": "(not installed)", "ENABLED": "-", "CURRENT": kudos_rev, "HEAD": "-",
        "STATE": "orphaned",
    }  # fmt: skip
    assert [rows[name]["STATE"] for name in MIGRATING] == ["at head"] * 4
    assert "kudos" not in rows
    line = warning_line(current.stderr, kudos_rev)
    assert line.endswith("(tables no installed plugin owns: kudos)")


async def test_upgrade_upgrades_the_other_plugins_and_warns(
    site: Path, kudos_rev: str, database_url: str, tmp_path: Path, kudos_migrated: KudosMigrated
) -> None:
    """Stops: an uninstalled plugin's row making every upgrade fail, or the upgrade
    dropping the row (the record that its tables are there)."""
    run = partial(courtyard, url=database_url, cwd=tmp_path)
    await kudos_migrated.into(database_url, site=site, cwd=tmp_path)
    downgraded = run("db", "downgrade", "upload@base", enabled=BUILT_INS)
    assert ok(downgraded).splitlines()[-1] == "downgraded to upload@base"
    assert "upload_file" not in await tables(database_url)

    upgraded = run("db", "upgrade", enabled=BUILT_INS)

    assert ok(upgraded).splitlines() == [
        "upgrading upload → head",
        f"upgraded: upload (base → {UPLOAD_REV})",
        "already at head: user, auth, oauth",
    ]
    warning_line(upgraded.stderr, kudos_rev)
    assert {"upload_file", "kudos"} <= await tables(database_url)
    assert kudos_rev in await versions(database_url)


async def test_ready_is_degraded_naming_the_revision_until_the_plugin_is_downgraded(
    site: Path,
    kudos_rev: str,
    database_url: str,
    tmp_path: Path,
    app_client: AppFactory,
    kudos_migrated: KudosMigrated,
) -> None:
    """Stops: an uninstalled plugin keeping every instance out of the load balancer, and
    shows the way out the warning gives: reinstall, downgrade its branch to base."""
    run = partial(courtyard, url=database_url, cwd=tmp_path)
    await kudos_migrated.into(database_url, site=site, cwd=tmp_path)

    async with app_client(enabled_plugins=BUILT_INS, upgrade=False) as client:
        degraded = await client.get("/health/ready")

    assert degraded.status_code == 200, degraded.text
    body = degraded.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == (
        f"degraded: orphaned: revision {kudos_rev} of a plugin no longer installed "
        "(see `courtyard db current`)"
    )

    downgraded = run("db", "downgrade", "kudos@base", enabled=WITH_KUDOS, site=site)
    assert ok(downgraded).splitlines() == ["downgraded kudos → base", "downgraded to kudos@base"]
    assert "kudos" not in await tables(database_url)
    assert kudos_rev not in await versions(database_url)

    async with app_client(enabled_plugins=BUILT_INS, upgrade=False) as client:
        ready = await client.get("/health/ready")

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["migrations"] == "ok"
    current = run("db", "current", enabled=BUILT_INS)
    assert "(not installed)" not in ok(current)
    assert current.stderr == ""


async def test_orphan_standing_for_the_user_branch_is_a_one_line_error_until_downgraded(
    site: Path, kudos_rev: str, database_url: str, tmp_path: Path
) -> None:
    """Upgraded alone, kudos brings the user branch to the revision it depends on, and its
    row becomes the only record of that branch (Alembic keeps no row for a revision that
    another one depends on). Once kudos is gone, `user` looks unmigrated although its
    table is there. Stops: a traceback or a half-done upgrade then, and shows the way out
    the error gives."""
    run = partial(courtyard, url=database_url, cwd=tmp_path)
    ok(run("db", "upgrade", "kudos", enabled="user,kudos", site=site))
    assert await versions(database_url) == {kudos_rev}
    before = await tables(database_url)

    failed = run("db", "upgrade", enabled="user")

    assert failed.returncode == 2, failed
    assert "Traceback" not in failed.stderr, failed.stderr
    (line,) = failed.stderr.splitlines()
    assert line.startswith("courtyard: error: migration failed upgrading user: "), line
    assert line.endswith(
        f"the orphaned revision {kudos_rev} (of a plugin no longer installed) may stand for "
        "user's revisions too: reinstall that plugin and run "
        "`courtyard db downgrade <plugin>@base` first"
    ), line
    assert await tables(database_url) == before
    assert await versions(database_url) == {kudos_rev}

    ok(run("db", "downgrade", "kudos@base", enabled="user,kudos", site=site))

    current = rows_by(parse_table(ok(run("db", "current", enabled="user"))), "PLUGIN")
    assert current["user"]["CURRENT"] == USER_REV
    ok(run("db", "upgrade", enabled="user"))
    current = rows_by(parse_table(ok(run("db", "current", enabled="user"))), "PLUGIN")
    assert current["user"]["STATE"] == "at head"
    assert "kudos" not in await tables(database_url)


async def test_a_disabled_plugin_is_not_orphaned(
    site: Path, kudos_rev: str, database_url: str, tmp_path: Path, kudos_migrated: KudosMigrated
) -> None:
    """Installed but switched off: its revisions are still known, its branch is listed as
    not enabled and left as it is, and nothing warns."""
    run = partial(courtyard, url=database_url, cwd=tmp_path, site=site)
    await kudos_migrated.into(database_url, site=site, cwd=tmp_path)

    current = run("db", "current", enabled=BUILT_INS)
    upgraded = run("db", "upgrade", enabled=BUILT_INS)

    rows = rows_by(parse_table(ok(current)), "PLUGIN")
    assert rows["kudos"] == {
        "PLUGIN": "kudos", "ENABLED": "no", "CURRENT": kudos_rev, "HEAD": kudos_rev,
        "STATE": "at head",
    }  # fmt: skip
    assert "(not installed)" not in rows
    assert ok(upgraded).splitlines() == ["already at head: user, auth, oauth, upload"]
    assert current.stderr == upgraded.stderr == ""
