"""`oauth_identity` and `oauth_flow` as the migration creates them, on every backend, and
the oauth branch going down (the rows move back to the tables of the release before the
`oauth` plugin) and up again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from core.kernel import Kernel
from core.migrator import MigrationError, Migrator
from plugins.auth import models as _auth_models  # noqa: F401 - the tables in metadata
from plugins.oauth import models as _oauth_models  # noqa: F401
from plugins.user import models as _user_models  # noqa: F401
from tests.conftest import make_settings
from tests.plugins.oauth.conftest import PLUGINS
from tests.plugins.oauth.legacy import (
    FLOW_COLUMNS,
    IDENTITY_COLUMNS,
    LEGACY_TABLES,
    create_legacy_tables,
    legacy_database,
    rows,
)
from tests.support.databases import (
    app_engine,
    execute,
    fetch,
    fresh_database,
    inspect_database,
    model_differences,
    reflected_shape,
    tables,
)

OAUTH_TABLES = ("oauth_identity", "oauth_flow")


def migrator(url: str) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins=PLUGINS)))


@pytest.fixture
async def migrated(database_url: str) -> str:
    await migrator(database_url).upgrade()
    return database_url


async def shapes(url: str, names: tuple[str, ...]) -> dict[str, Any]:
    def reflect(connection: Connection) -> dict[str, Any]:
        return {name: reflected_shape(connection, name) for name in names}

    return dict(await inspect_database(url, reflect))


def names_of(shape: dict[str, Any]) -> set[str]:
    """The names of a table's primary key, foreign keys, unique constraints and indexes."""
    return {
        shape["primary_key"][0],
        *(fk[0] for fk in shape["foreign_keys"]),
        *(name for name, _ in shape["uniques"]),
        *shape["indexes"],
    }


async def test_alembic_finds_no_difference_between_the_models_and_the_oauth_tables(
    migrated: str,
) -> None:
    diffs, warned = await inspect_database(migrated, model_differences(OAUTH_TABLES))

    assert diffs == []
    assert warned == []


async def test_constraints_and_indexes_follow_the_naming_convention(migrated: str) -> None:
    shape = await shapes(migrated, OAUTH_TABLES)

    assert names_of(shape["oauth_identity"]) == {
        "pk_oauth_identity",
        "fk_oauth_identity_user_id_user",
        "uq_oauth_identity_provider_subject",
        "ix_oauth_identity_user_id",
    }
    assert names_of(shape["oauth_flow"]) == {
        "pk_oauth_flow",
        "fk_oauth_flow_user_id_user",
        "uq_oauth_flow_state_hash",
        "ix_oauth_flow_user_id",
        "ix_oauth_flow_expires_at",
    }


async def test_going_down_moves_the_rows_back_to_the_tables_of_the_release_before(
    database_url: str, tmp_path: Path
) -> None:
    """Stops: `db downgrade oauth@base` losing the identities, or leaving tables the
    release before the oauth plugin could not run on."""
    await legacy_database(database_url)
    m = migrator(database_url)
    await m.upgrade()
    identities = await rows(database_url, "oauth_identity", IDENTITY_COLUMNS)
    flows = await rows(database_url, "oauth_flow", FLOW_COLUMNS)

    await m.downgrade("oauth@base")

    found = await tables(database_url)
    assert not found & set(OAUTH_TABLES)
    assert await rows(database_url, "auth_identity", IDENTITY_COLUMNS) == identities
    assert await rows(database_url, "auth_oauth_flow", FLOW_COLUMNS) == flows
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    async with fresh_database(backend, tmp_path) as other:
        engine = app_engine(other)
        try:
            async with engine.begin() as connection:
                await connection.execute(text('CREATE TABLE "user" (id VARCHAR(64) PRIMARY KEY)'))
                await connection.run_sync(create_legacy_tables)
        finally:
            await engine.dispose()
        as_created = await shapes(other, LEGACY_TABLES)
    assert await shapes(database_url, LEGACY_TABLES) == as_created

    await m.upgrade()

    assert not await tables(database_url) & set(LEGACY_TABLES)
    assert await rows(database_url, "oauth_identity", IDENTITY_COLUMNS) == identities
    assert await rows(database_url, "oauth_flow", FLOW_COLUMNS) == flows


async def test_a_new_databases_tables_go_down_and_up_again(migrated: str) -> None:
    m = migrator(migrated)
    before = await shapes(migrated, OAUTH_TABLES)

    await m.downgrade("oauth@base")
    await m.upgrade()

    assert await shapes(migrated, OAUTH_TABLES) == before


async def test_auth_going_below_the_revision_oauth_depends_on_takes_oauth_down_first(
    migrated: str,
) -> None:
    """b41c7d2e0003 once created the tables oauth's first revision moves: going below it
    needs `--cascade`, and then drops them as it always did."""
    m = migrator(migrated)

    with pytest.raises(MigrationError, match="branches of oauth"):
        await m.downgrade("auth@b41c7d2e0002")
    assert set(OAUTH_TABLES) <= await tables(migrated)

    moved = await m.downgrade("auth@b41c7d2e0002", cascade=True)

    assert [(s.plugin, s.current) for s in moved] == [("auth", "b41c7d2e0002"), ("oauth", None)]
    found = await tables(migrated)
    assert not found & {*OAUTH_TABLES, *LEGACY_TABLES}
    assert {"user", "auth_credential", "auth_action_token"} <= found

    await m.upgrade()

    assert set(OAUTH_TABLES) <= await tables(migrated)


async def test_one_provider_account_links_to_one_user_only(migrated: str) -> None:
    for user in ("usr_a", "usr_b"):
        await execute(
            migrated,
            'INSERT INTO "user" (id, email, email_key, name, role, is_active, email_verified, '
            "created_at, updated_at) VALUES (:id, :id, :id, 'n', 'user', true, false, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            id=user,
        )
    insert = (
        "INSERT INTO oauth_identity (id, user_id, provider, subject, created_at) "
        "VALUES (:id, :user, 'acme', 'sub-1', CURRENT_TIMESTAMP)"
    )
    await execute(migrated, insert, id="aid_1", user="usr_a")

    with pytest.raises(IntegrityError):
        await execute(migrated, insert, id="aid_2", user="usr_b")

    await execute(migrated, 'DELETE FROM "user" WHERE id = :id', id="usr_a")
    assert await fetch(migrated, "SELECT id FROM oauth_identity") == []
