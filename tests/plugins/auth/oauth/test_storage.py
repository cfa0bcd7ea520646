"""`auth_identity` and `auth_oauth_flow` as the migration creates them, on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from core.kernel import Kernel
from core.migrator import Migrator
from plugins.auth import models as _auth_models  # noqa: F401 - the tables in metadata
from plugins.user import models as _user_models  # noqa: F401
from tests.conftest import make_settings
from tests.plugins.auth.conftest import PLUGINS
from tests.support.databases import execute, fetch, inspect_database, model_differences

OAUTH_TABLES = ("auth_identity", "auth_oauth_flow")
BEFORE = "b41c7d2e0002"


def migrator(url: str) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins=PLUGINS)))


async def tables(url: str) -> set[str]:
    return set(await inspect_database(url, lambda c: inspect(c).get_table_names()))


@pytest.fixture
async def migrated(database_url: str) -> str:
    await migrator(database_url).upgrade()
    return database_url


async def test_alembic_finds_no_difference_between_the_models_and_the_oauth_tables(
    migrated: str,
) -> None:
    diffs, warned = await inspect_database(migrated, model_differences(OAUTH_TABLES))

    assert diffs == []
    assert warned == []


async def test_the_migration_goes_down_and_up_again(migrated: str) -> None:
    m = migrator(migrated)

    await m.downgrade(f"auth@{BEFORE}")

    remaining = await tables(migrated)
    assert not remaining & set(OAUTH_TABLES)
    assert {"user", "auth_session", "auth_action_token"} <= remaining

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
        "INSERT INTO auth_identity (id, user_id, provider, subject, created_at) "
        "VALUES (:id, :user, 'acme', 'sub-1', CURRENT_TIMESTAMP)"
    )
    await execute(migrated, insert, id="aid_1", user="usr_a")

    with pytest.raises(IntegrityError):
        await execute(migrated, insert, id="aid_2", user="usr_b")

    await execute(migrated, 'DELETE FROM "user" WHERE id = :id', id="usr_a")
    assert await fetch(migrated, "SELECT id FROM auth_identity") == []
