"""The `user` table as the database holds it, on SQLite and PostgreSQL.

The migrations `9a7e5c310001` (the table) and `9a7e5c310002` (the statistics' index)
create it; these tests look at the real database (catalogs, raw SQL) rather than through
the service, except for the timestamp round trips and the rules only the service applies
(how the email key is derived, which role is known).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.app import create_app
from core.db import metadata
from core.errors import ConflictError, InvalidInputError
from core.kernel import Kernel
from core.migrator import Migrator
from plugins.user.api import User
from plugins.user.models import email_key  # (also puts the `user` table into core.db.metadata)
from tests.conftest import make_settings, migrate
from tests.support.databases import (
    execute,
    fetch,
    fresh_database,
    inspect_database,
    model_differences,
    tables,
)

USER_REV = "9a7e5c310002"  # the head of the `user` branch
COLUMNS = {
    "id", "email", "email_key", "name", "role", "is_active", "email_verified",
    "created_at", "updated_at", "deleted_at",
}  # fmt: skip
UNIQUE_EMAIL = "uq_user_email_live"
LIVE_SINCE = "ix_user_deleted_at_created_at"  # member statistics: live users since an instant
# The partial index on the plain `email_key` column, exactly as each backend's catalog spells it.
UNIQUE_EMAIL_DEFINITION = {
    "sqlite": "CREATE UNIQUE INDEX uq_user_email_live ON user (email_key) WHERE deleted_at IS NULL",
    "postgresql": (
        'CREATE UNIQUE INDEX uq_user_email_live ON public."user" USING btree '
        "(email_key) WHERE (deleted_at IS NULL)"
    ),
}
# How each backend reports a row the unique email index refuses. SQLite names the index only
# when it is on an expression; on plain columns it names them, and the upgrade test shows
# `uq_user_email_live` is the only unique index there is on `email_key`.
UNIQUE_EMAIL_VIOLATION = {
    "sqlite": "UNIQUE constraint failed: user.email_key",
    "postgresql": f'duplicate key value violates unique constraint "{UNIQUE_EMAIL}"',
}
# Secondary indexes of `user` (not the primary key's) with their stored definitions.
INDEX_DEFINITIONS = {
    "sqlite": (
        "SELECT name, sql FROM sqlite_master "
        "WHERE type = 'index' AND tbl_name = 'user' AND sql IS NOT NULL"
    ),
    "postgresql": (
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = 'user' AND indexname <> 'pk_user'"
    ),
}


# -- looking at the real database ---------------------------------------------------------


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


async def index_definitions(url: str) -> dict[str, str]:
    """{name: definition} of the secondary indexes on `user`, read from the catalog."""
    return dict(await fetch(url, INDEX_DEFINITIONS[backend(url)]))


def _index_shape(index: Any) -> dict[str, Any]:
    """A reflected index, comparable: SQLite reflects a WHERE clause as a `text()` object
    (equal only to itself), so dialect options are kept as their SQL text."""
    options = {key: str(value) for key, value in index.get("dialect_options", {}).items()}
    return {**index, "unique": bool(index["unique"]), "dialect_options": options}


def _table_shape(connection: Connection) -> dict[str, Any]:
    """What SQLAlchemy reflects of `user`: columns, primary key, checks, indexes."""
    found = inspect(connection)
    return {
        "columns": {c["name"]: (repr(c["type"]), c["nullable"]) for c in found.get_columns("user")},
        "primary_key": found.get_pk_constraint("user"),
        "checks": sorted((c["name"], c["sqltext"]) for c in found.get_check_constraints("user")),
        "indexes": {i["name"]: _index_shape(i) for i in found.get_indexes("user")},
    }


async def table_shape(url: str) -> dict[str, Any]:
    return dict(await inspect_database(url, _table_shape))


async def insert_user(
    url: str, user_id: str, email: str, *, deleted: bool = False, role: str = "user"
) -> None:
    """One row written with plain SQL, so only the database's own rules apply; `email_key`
    is set as the service sets it (`test_the_service_stores_the_email_and_its_key` checks)."""
    deleted_at = "CURRENT_TIMESTAMP" if deleted else "NULL"
    await execute(
        url,
        'INSERT INTO "user" (id, email, email_key, name, role, is_active, email_verified, '
        "created_at, updated_at, deleted_at) "
        "VALUES (:id, :email, :key, 'Someone', :role, :active, :verified, "
        f"CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, {deleted_at})",
        id=user_id,
        email=email,
        key=email_key(email),
        role=role,
        active=True,
        verified=False,
    )


async def stored_ids(url: str) -> list[str]:
    return [row[0] for row in await fetch(url, 'SELECT id FROM "user" ORDER BY id')]


def migrator(url: str) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins="user")))


async def user_branch(m: Migrator) -> tuple[str | None, str | None, bool]:
    """(current, head, at head) of the `user` branch."""
    state = next(s for s in await m.states() if s.plugin == "user")
    return state.current, state.head, state.at_head


@pytest.fixture
async def migrated(database_url: str) -> str:
    """`database_url`, upgraded with only the `user` plugin enabled."""
    await migrator(database_url).upgrade()
    return database_url


# -- 1. the migration, up and down ---------------------------------------------------------


async def test_upgrade_creates_the_user_table_with_its_columns_and_indexes(
    database_url: str,
) -> None:
    m = migrator(database_url)

    await m.upgrade()

    assert "user" in await tables(database_url)
    shape = await table_shape(database_url)
    assert set(shape["columns"]) == COLUMNS
    assert shape["primary_key"]["constrained_columns"] == ["id"]
    assert shape["primary_key"]["name"] == "pk_user"
    assert [name for name, _ in shape["checks"]] == ["ck_user_role"]
    assert shape["columns"]["email_key"][1] is False  # NOT NULL
    deleted_at = shape["indexes"]["ix_user_deleted_at"]
    assert (deleted_at["column_names"], deleted_at["unique"]) == (["deleted_at"], False)
    unique_email = shape["indexes"][UNIQUE_EMAIL]  # reflected: a plain column, not an expression
    assert (unique_email["column_names"], unique_email["unique"]) == (["email_key"], True)
    live_since = shape["indexes"][LIVE_SINCE]
    assert (live_since["column_names"], live_since["unique"]) == (
        ["deleted_at", "created_at"],
        False,
    )
    indexes = await index_definitions(database_url)
    assert set(indexes) == {"ix_user_deleted_at", UNIQUE_EMAIL, LIVE_SINCE}
    assert indexes[UNIQUE_EMAIL] == UNIQUE_EMAIL_DEFINITION[backend(database_url)]
    assert await user_branch(m) == (USER_REV, USER_REV, True)


async def test_downgrade_to_base_removes_the_table_and_its_indexes(migrated: str) -> None:
    m = migrator(migrated)

    await m.downgrade("user@base")

    assert "user" not in await tables(migrated)
    assert await index_definitions(migrated) == {}
    assert await user_branch(m) == (None, USER_REV, False)


async def test_upgrade_after_downgrade_recreates_the_same_table(migrated: str) -> None:
    before = (await table_shape(migrated), await index_definitions(migrated))
    m = migrator(migrated)
    await m.downgrade("user@base")

    await m.upgrade()

    assert (await table_shape(migrated), await index_definitions(migrated)) == before
    assert await user_branch(m) == (USER_REV, USER_REV, True)
    await insert_user(migrated, "usr_1", "again@example.com")
    assert await stored_ids(migrated) == ["usr_1"]


# -- 2. one live account per email key, enforced by the database -------------------------


async def test_live_rows_with_the_same_email_key_are_refused(migrated: str) -> None:
    await insert_user(migrated, "usr_1", "Ann@Example.com")

    with pytest.raises(IntegrityError) as caught:
        await insert_user(migrated, "usr_2", "ann@example.COM")

    assert UNIQUE_EMAIL_VIOLATION[backend(migrated)] in str(caught.value)
    assert await stored_ids(migrated) == ["usr_1"]


async def test_live_rows_with_the_same_non_ascii_email_key_are_refused(migrated: str) -> None:
    """The index compares the key Python folded, so Ü and ü clash on SQLite too."""
    await insert_user(migrated, "usr_1", "Ünal@example.com")

    with pytest.raises(IntegrityError) as caught:
        await insert_user(migrated, "usr_2", "ünal@EXAMPLE.com")

    assert UNIQUE_EMAIL_VIOLATION[backend(migrated)] in str(caught.value)
    assert await stored_ids(migrated) == ["usr_1"]


async def test_soft_deleted_row_does_not_block_a_live_row_with_its_email_key(
    migrated: str,
) -> None:
    await insert_user(migrated, "usr_1", "ann@example.com", deleted=True)

    await insert_user(migrated, "usr_2", "ANN@example.com")

    assert await stored_ids(migrated) == ["usr_1", "usr_2"]


async def test_two_soft_deleted_rows_may_share_an_email_key(migrated: str) -> None:
    await insert_user(migrated, "usr_1", "ann@example.com", deleted=True)

    await insert_user(migrated, "usr_2", "Ann@Example.com", deleted=True)

    keys = await fetch(migrated, 'SELECT email_key FROM "user" ORDER BY id')
    assert keys == [("ann@example.com",), ("ann@example.com",)]


async def test_undeleting_a_row_is_refused_while_its_email_key_is_live_again(
    migrated: str,
) -> None:
    await insert_user(migrated, "usr_1", "ann@example.com", deleted=True)
    await insert_user(migrated, "usr_2", "Ann@example.com")

    with pytest.raises(IntegrityError) as caught:
        await execute(migrated, "UPDATE \"user\" SET deleted_at = NULL WHERE id = 'usr_1'")

    assert UNIQUE_EMAIL_VIOLATION[backend(migrated)] in str(caught.value)
    deleted = await fetch(migrated, 'SELECT id FROM "user" WHERE deleted_at IS NOT NULL')
    assert deleted == [("usr_1",)]


async def test_a_row_without_an_email_key_is_refused(migrated: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        await execute(
            migrated,
            'INSERT INTO "user" (id, email, name, role, is_active, email_verified, '
            "created_at, updated_at) VALUES ('usr_1', 'ann@example.com', 'Ann', 'user', "
            ":active, :verified, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            active=True,
            verified=False,
        )

    assert "email_key" in str(caught.value)
    assert await stored_ids(migrated) == []


async def test_the_service_stores_the_email_as_given_and_its_key_lower_cased(
    migrated: str,
) -> None:
    app = create_app(make_settings(migrated, enabled_plugins="user"))
    service = app.state.kernel.container_of("user").service()
    try:
        await service.create("Ünal@Example.com", "Ünal")
    finally:
        await app.state.database.dispose()

    stored = await fetch(migrated, 'SELECT email, email_key FROM "user"')
    assert stored == [("Ünal@Example.com", "ünal@example.com")]


async def test_the_service_refuses_an_email_differing_only_in_non_ascii_case(
    migrated: str,
) -> None:
    """The point of `email_key`: on SQLite, whose lower() folds only A-Z, the old expression
    index let `Ünal@…` and `ünal@…` both be live; now both backends refuse the second."""
    app = create_app(make_settings(migrated, enabled_plugins="user"))
    service = app.state.kernel.container_of("user").service()
    try:
        await service.create("Ünal@example.com", "Ünal")
        with pytest.raises(ConflictError) as caught:
            await service.create("ünal@EXAMPLE.com", "Other Ünal")
    finally:
        await app.state.database.dispose()

    assert caught.value.code == "user.email_taken"
    assert await fetch(migrated, 'SELECT email FROM "user"') == [("Ünal@example.com",)]


# -- 3. the role check ---------------------------------------------------------------------


async def test_check_constraint_refuses_an_unknown_role(migrated: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        await insert_user(migrated, "usr_1", "root@example.com", role="root")

    assert "ck_user_role" in str(caught.value)
    assert await stored_ids(migrated) == []


@pytest.mark.parametrize("role", ["user", "admin"])
async def test_check_constraint_accepts_the_known_roles(migrated: str, role: str) -> None:
    await insert_user(migrated, "usr_1", f"{role}@example.com", role=role)

    assert await fetch(migrated, 'SELECT role FROM "user"') == [(role,)]


# -- 4. the models and the migration agree -------------------------------------------------


async def test_alembic_finds_no_difference_between_the_models_and_the_migrated_table(
    migrated: str,
) -> None:
    """Columns, types and both indexes (the unique email index included, now that it is on a
    plain column) are compared on every backend, and nothing is skipped."""
    diffs, warned = await inspect_database(migrated, model_differences({"user"}))

    assert diffs == []
    assert warned == []


async def test_migrated_table_is_the_same_as_one_built_from_the_models(
    migrated: str, tmp_path: Path
) -> None:
    """What Alembic does not compare (check constraints, an index's WHERE clause), the catalog
    does: the table built by `metadata.create_all` must be stored exactly the same way."""
    (tmp_path / "models").mkdir()
    async with fresh_database(backend(migrated), tmp_path / "models") as from_models:
        engine = create_async_engine(from_models, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    lambda c: metadata.create_all(c, tables=[metadata.tables["user"]])
                )
        finally:
            await engine.dispose()

        assert await table_shape(migrated) == await table_shape(from_models)
        assert await index_definitions(migrated) == await index_definitions(from_models)


# -- 5. timestamps -------------------------------------------------------------------------


def _assert_aware_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


async def test_timestamps_round_trip_as_aware_utc(migrated: str) -> None:
    app = create_app(make_settings(migrated, enabled_plugins="user"))
    database = app.state.database
    service = app.state.kernel.container_of("user").service()
    try:
        before = datetime.now(UTC)
        created: User = await service.create("a@example.com", "A")
        fetched: User = await service.get(created.id)
    finally:
        await database.dispose()

    for value in (fetched.created_at, fetched.updated_at):
        _assert_aware_utc(value)
        assert before - timedelta(seconds=1) <= value <= datetime.now(UTC)
    assert (fetched.created_at, fetched.updated_at) == (created.created_at, created.updated_at)
    assert fetched.deleted_at is None


async def test_deleted_at_round_trips_as_aware_utc(migrated: str) -> None:
    app = create_app(make_settings(migrated, enabled_plugins="user"))
    database = app.state.database
    user = app.state.kernel.container_of("user")
    try:
        created: User = await user.service().create("a@example.com", "A")
        await user.service().delete(created.id)
        async with database.write_sessions() as session:
            fetched: User = await user.directory(session=session).get(
                created.id, include_deleted=True
            )
    finally:
        await database.dispose()

    _assert_aware_utc(fetched.deleted_at)
    _assert_aware_utc(fetched.updated_at)
    assert fetched.deleted_at is not None
    assert fetched.deleted_at >= fetched.created_at


async def test_the_service_refuses_an_unknown_role_naming_the_field(
    database_url: str,
) -> None:
    """Callers of the service (other plugins, scripts) get a 422, not a misleading 409."""
    settings = make_settings(database_url, enabled_plugins="user")
    await migrate(settings)
    app = create_app(settings)
    service = app.state.kernel.container_of("user").service()
    try:
        with pytest.raises(InvalidInputError) as created:
            await service.create("x@example.com", "X", "root")
        user = await service.create("x@example.com", "X")
        with pytest.raises(InvalidInputError) as updated:
            await service.update(user.id, {"role": "root"})
        for raised in (created.value, updated.value):
            assert [e["field"] for e in raised.extra["errors"]] == ["role"]
    finally:
        await app.state.database.dispose()
