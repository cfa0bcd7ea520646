"""The real `courtyard` console script, run as a subprocess against installed test plugins."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from core.plugin import discover
from tests.support.courtyard_cli import (
    COURTYARD,
    assert_one_line_error,
    parse_table,
    rows_by,
    run_courtyard,
)
from tests.support.distributions import built_in_plugins

Courtyard = Callable[..., subprocess.CompletedProcess[str]]


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'cli.db'}"


@pytest.fixture
def courtyard(dists: dict[str, Path], tmp_path: Path) -> Courtyard:
    """`courtyard(*args, sets=("main",), **env)`: run in the test's folder with its own SQLite."""

    def run(
        *args: str, sets: tuple[str, ...] = ("main",), **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = {"COURTYARD_DATABASE_URL": sqlite_url(tmp_path), **env}
        return run_courtyard(*args, cwd=tmp_path, pythonpath=[dists[s] for s in sets], env=environ)

    return run


@pytest.fixture(scope="module")
def plugins_table(
    dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    """`courtyard plugins` with alpha and beta installed, run once for the tests reading it."""
    folder = tmp_path_factory.mktemp("cli-plugins")
    result = run_courtyard(
        "plugins",
        cwd=folder,
        pythonpath=[dists["main"]],
        env={"COURTYARD_DATABASE_URL": sqlite_url(folder)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "VERSION", "DISTRIBUTION", "ENABLED", "REQUIRES", "MIGRATION", "HEAD",
    ]  # fmt: skip
    return rows_by(parse_table(result.stdout), "NAME")


def test_the_console_script_is_installed() -> None:
    assert COURTYARD.is_file()


def test_plugins_lists_name_version_distribution_enabled_requires(
    plugins_table: dict[str, dict[str, str]],
) -> None:
    alpha, beta = plugins_table["alpha"], plugins_table["beta"]
    assert list(plugins_table).index("alpha") < list(plugins_table).index("beta")
    assert (alpha["VERSION"], alpha["DISTRIBUTION"], alpha["ENABLED"], alpha["REQUIRES"]) == (
        "1.2.0",
        "courtyard-alpha",
        "yes",
        "-",
    )
    assert (beta["VERSION"], beta["DISTRIBUTION"], beta["ENABLED"], beta["REQUIRES"]) == (
        "0.3.0-descriptor",
        "courtyard-beta",
        "yes",
        "alpha",
    )
    assert beta["MIGRATION HEAD"] == "b2e0c0de0001"


def test_plugins_shows_every_plugins_migration_head(
    plugins_table: dict[str, dict[str, str]],
) -> None:
    # alpha's head is also a dependency of beta's revision; it is still alpha's head.
    assert plugins_table["alpha"]["MIGRATION HEAD"] == "a1f0c0de0001"
    assert plugins_table["beta"]["MIGRATION HEAD"] == "b2e0c0de0001"


def test_plugins_lists_broken_plugins_that_are_disabled(courtyard: Courtyard) -> None:
    result = courtyard("plugins", sets=("main", "broken"), COURTYARD_ENABLED_PLUGINS="alpha,beta")
    assert result.returncode == 0, result.stderr
    rows = rows_by(parse_table(result.stdout), "NAME")
    assert rows["alpha"]["ENABLED"] == rows["beta"]["ENABLED"] == "yes"
    assert rows["orphan"]["ENABLED"] == "no"
    assert rows["orphan"]["REQUIRES"] == "missing"
    assert rows["importfail"]["ENABLED"] == "no"
    assert rows["importfail"]["DISTRIBUTION"] == "courtyard-broken"
    assert rows["importfail"][""].startswith("error: plugin 'importfail' from distribution")
    assert "ModuleNotFoundError" in rows["importfail"][""]


def test_a_plugins_command_group(courtyard: Courtyard) -> None:
    greet = courtyard("alpha", "greet", "Bob")
    assert (greet.returncode, greet.stdout, greet.stderr) == (0, "hello, Bob!\n", "")

    greet = courtyard("alpha", "greet", "Bob", COURTYARD_ALPHA__GREETING="hi")
    assert (greet.returncode, greet.stdout) == (0, "hi, Bob!\n")

    ping = courtyard("beta", "ping")
    assert (ping.returncode, ping.stdout, ping.stderr) == (0, "beta pong\n", "")


def test_a_plugins_command_reads_courtyard_toml_in_the_working_directory(
    courtyard: Courtyard, tmp_path: Path
) -> None:
    (tmp_path / "courtyard.toml").write_text('[alpha]\ngreeting = "howdy"\n')
    greet = courtyard("alpha", "greet", "Bob")
    assert (greet.returncode, greet.stdout) == (0, "howdy, Bob!\n")


def test_a_disabled_plugins_command_group_is_gone(courtyard: Courtyard) -> None:
    ping = courtyard("beta", "ping", COURTYARD_DISABLED_PLUGINS="beta")
    assert ping.returncode != 0
    assert ping.stdout == ""
    assert "No such command 'beta'" in ping.stderr

    listing = courtyard("plugins", COURTYARD_DISABLED_PLUGINS="beta")
    assert listing.returncode == 0, listing.stderr
    rows = rows_by(parse_table(listing.stdout), "NAME")
    assert rows["alpha"]["ENABLED"] == "yes"
    assert rows["beta"]["ENABLED"] == "no"
    assert rows["beta"]["VERSION"] == "0.3.0-descriptor"


def test_bad_configuration_is_one_line_on_stderr(courtyard: Courtyard) -> None:
    result = courtyard("plugins", COURTYARD_DATABASE_URL="notaurl")
    assert_one_line_error(result, "COURTYARD_DATABASE_URL", "not a database URL")


def test_help_works_with_bad_configuration(courtyard: Courtyard) -> None:
    result = courtyard("--help", COURTYARD_DATABASE_URL="notaurl")
    assert result.returncode == 0, result.stderr
    assert "Usage: courtyard" in result.stdout
    for command in ("serve", "plugins", "db"):
        assert command in result.stdout
    assert "Traceback" not in result.stderr


def test_a_plugin_startup_failure_is_one_line(courtyard: Courtyard) -> None:
    cycle = {"sets": ("main", "broken"), "COURTYARD_ENABLED_PLUGINS": "cyclea,cycleb"}
    for args in (("plugins",), ("alpha", "greet", "Bob")):
        assert_one_line_error(
            courtyard(*args, **cycle),
            "dependency cycle between plugins: cyclea -> cycleb -> cyclea",
        )


def test_a_weak_production_secret_is_one_line_without_the_secret(courtyard: Courtyard) -> None:
    secret = "Tiny-Secret-31-bytes-long-xxxxx"
    assert len(secret) == 31
    result = courtyard("plugins", COURTYARD_ENV="production", COURTYARD_SECRET_KEY=secret)
    line = assert_one_line_error(result, "COURTYARD_SECRET_KEY", "32 bytes")
    assert "Tiny-Secret" not in line


async def test_a_command_on_a_database_not_yet_migrated_says_to_upgrade(
    courtyard: Courtyard, database_url: str
) -> None:
    """`users list` before `db upgrade`: its table is missing (SQLite: no such table,
    PostgreSQL: relation does not exist), one line saying what to run."""
    result = await asyncio.to_thread(
        courtyard, "users", "list", COURTYARD_DATABASE_URL=database_url
    )
    line = assert_one_line_error(
        result, "the database is not migrated for ", "run `courtyard db upgrade`"
    )
    behind = line.split("not migrated for ", 1)[1].split(": run", 1)[0].split(", ")
    assert {"user", "alpha", "beta"} <= set(behind)
    assert await table_names(database_url) <= {"alembic_version"}


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_db_upgrade_then_current(courtyard: Courtyard, database_url: str) -> None:
    upgrade = await asyncio.to_thread(
        courtyard, "db", "upgrade", COURTYARD_DATABASE_URL=database_url
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Traceback" not in upgrade.stderr
    assert {"alpha_item", "beta_note"} <= await table_names(database_url)
    summary = upgrade.stdout.splitlines()[-1]
    assert summary.startswith("upgraded: ")  # `upgraded: alpha (base → a1f0c0de0001), …`
    moves = summary.removeprefix("upgraded: ").split(", ")
    upgraded = [move.split(" (base → ")[0] for move in moves]
    migrating = {p.name for p in discover() if p.name in built_in_plugins() and p.load().migrations}
    assert "mail" not in migrating  # no tables, so no branch to upgrade
    assert sorted(upgraded) == sorted({"alpha", "beta", *migrating})

    current = await asyncio.to_thread(
        courtyard, "db", "current", COURTYARD_DATABASE_URL=database_url
    )
    assert current.returncode == 0, current.stderr
    rows = rows_by(parse_table(current.stdout), "PLUGIN")
    assert rows["alpha"]["HEAD"] == "a1f0c0de0001"
    assert rows["beta"]["HEAD"] == "b2e0c0de0001"
    for name in ("alpha", "beta"):
        assert rows[name]["ENABLED"] == "yes"
        assert rows[name]["CURRENT"] == rows[name]["HEAD"]
        assert rows[name]["STATE"] == "at head"
