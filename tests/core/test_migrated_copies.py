"""The suite's migrated copies (`tests.support.databases.MigratedCopies`) give a test the
same database a real migration would, and never replace one the test has written to."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings, migrate
from tests.support.databases import MigratedCopies, execute, fetch, fresh_database, tables

PLUGINS = "user,auth,mail"


async def recorded(url: str) -> list[tuple[object, ...]]:
    return sorted(await fetch(url, "SELECT version_num FROM alembic_version"))


async def test_a_copy_holds_what_migrating_would(
    database_url: str, migrated_copies: MigratedCopies, tmp_path: Path
) -> None:
    """Stops: a copy missing a table or a recorded revision, so a test would run against a
    schema the app never has."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    await migrated_copies.migrate(make_settings(database_url, enabled_plugins=PLUGINS))
    async with fresh_database(backend, tmp_path) as migrated:
        await migrate(make_settings(migrated, enabled_plugins=PLUGINS))
        assert await tables(database_url) == await tables(migrated)
        assert await recorded(database_url) == await recorded(migrated)
    assert {"user", "auth_credential", "alembic_version"} <= await tables(database_url)


async def test_a_database_already_written_to_is_migrated_not_replaced(
    database_url: str, migrated_copies: MigratedCopies
) -> None:
    """Stops: what a test wrote before starting its app (rows, a table, a half-migrated
    schema under test) silently replaced by a template."""
    await migrate(make_settings(database_url, enabled_plugins="user"))
    await execute(database_url, "CREATE TABLE written_by_the_test (note VARCHAR(20))")
    await execute(database_url, "INSERT INTO written_by_the_test VALUES ('kept')")

    await migrated_copies.migrate(make_settings(database_url, enabled_plugins=PLUGINS))

    assert await fetch(database_url, "SELECT note FROM written_by_the_test") == [("kept",)]
    assert "auth_credential" in await tables(database_url)
