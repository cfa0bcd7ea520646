"""The `auth_*` tables as the database holds them, on SQLite and PostgreSQL.

The migration `b41c7d2e0001` (branch `auth`, depending on the `user` branch) creates them;
these tests read the real catalogs and rows with plain SQL, so a model, a migration or a
service that stores the wrong thing shows up here even when the API still looks right.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import UTCDateTime, is_valid_id, metadata
from core.kernel import Kernel
from core.migrator import Migrator
from plugins.auth import models as _auth_models  # noqa: F401 - puts the auth tables in metadata
from plugins.user import models as _user_models  # noqa: F401 - and the `user` table they need
from tests.conftest import make_settings
from tests.plugins.auth.conftest import PASSWORD, PLUGINS, AuthApp, AuthAppFactory
from tests.support.databases import (
    execute,
    fetch,
    fresh_database,
    inspect_database,
    model_differences,
    reflected_shape,
    tables,
)

USER_REV = "9a7e5c310002"  # the head of the user branch
USER_TABLE_REV = "9a7e5c310001"  # the user revision auth's migration depends on
AUTH_REV = "b41c7d2e0003"  # the head of the auth branch (0001 created the tables below)
AUTH_TABLES = ("auth_credential", "auth_session", "auth_refresh_token")
SESSION_LIFETIME = timedelta(days=30)
# OWASP Password Storage Cheat Sheet minimum for argon2id: m=19 MiB, t=2, p=1.
OWASP_ARGON2ID_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# What plugins/auth/models.py declares, backend-neutral: {column: (kind, length, nullable)}.
EXPECTED_COLUMNS: dict[str, dict[str, tuple[str, int | None, bool]]] = {
    "auth_credential": {
        "user_id": ("string", 64, False),
        "password_hash": ("string", 255, False),
        "changed_at": ("datetime", None, False),
    },
    "auth_session": {
        "id": ("string", 64, False),
        "user_id": ("string", 64, False),
        "created_at": ("datetime", None, False),
        "last_used_at": ("datetime", None, False),
        "expires_at": ("datetime", None, False),
        "revoked_at": ("datetime", None, True),
        "user_agent": ("string", 512, True),
        "ip": ("string", 64, True),
    },
    "auth_refresh_token": {
        "id": ("string", 64, False),
        "session_id": ("string", 64, False),
        "token_hash": ("string", 64, False),
        "issued_at": ("datetime", None, False),
        "used_at": ("datetime", None, True),
        "replaced_by": ("string", 64, True),
    },
}
EXPECTED_PRIMARY_KEYS = {
    "auth_credential": ("pk_auth_credential", ["user_id"]),
    "auth_session": ("pk_auth_session", ["id"]),
    "auth_refresh_token": ("pk_auth_refresh_token", ["id"]),
}
# (name, columns, referred table, referred columns, ON DELETE)
EXPECTED_FOREIGN_KEYS = {
    "auth_credential": [
        ("fk_auth_credential_user_id_user", ["user_id"], "user", ["id"], "CASCADE"),
    ],
    "auth_session": [
        ("fk_auth_session_user_id_user", ["user_id"], "user", ["id"], "CASCADE"),
    ],
    "auth_refresh_token": [
        (
            "fk_auth_refresh_token_session_id_auth_session",
            ["session_id"],
            "auth_session",
            ["id"],
            "CASCADE",
        ),
    ],
}
EXPECTED_UNIQUES = {
    "auth_credential": [],
    "auth_session": [],
    "auth_refresh_token": [("uq_auth_refresh_token_token_hash", ["token_hash"])],
}
# Secondary (non-unique) indexes: {name: columns}.
EXPECTED_INDEXES = {
    "auth_credential": {},
    "auth_session": {
        "ix_auth_session_revoked_at": ["revoked_at"],
        "ix_auth_session_user_id": ["user_id"],
    },
    "auth_refresh_token": {"ix_auth_refresh_token_session_id": ["session_id"]},
}
# Every index or constraint-backing index the catalog holds for the auth tables.
AUTH_INDEX_NAMES = {
    "sqlite": (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'auth\\_%' "
        "ESCAPE '\\'"
    ),
    "postgresql": (
        "SELECT indexname FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename LIKE 'auth\\_%'"
    ),
}
ALL_TABLES = ("user", *AUTH_TABLES)
# Every table of the auth models (later migrations add some) and the `user` table.
EVERY_TABLE = ("user", *sorted(name for name in metadata.tables if name.startswith("auth_")))


# -- looking at the real database ---------------------------------------------------------


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


def migrator(url: str, plugins: str = PLUGINS) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins=plugins)))


async def branches(m: Migrator) -> dict[str, tuple[str | None, str | None]]:
    """{plugin: (current, head)} for the `user` and `auth` branches."""
    return {s.plugin: (s.current, s.head) for s in await m.states() if s.plugin in ("user", "auth")}


def _auth_shape(connection: Connection) -> dict[str, Any]:
    """Everything SQLAlchemy reflects of the auth tables that the models declare."""
    return {name: reflected_shape(connection, name) for name in AUTH_TABLES}


async def auth_shape(url: str) -> dict[str, Any]:
    return dict(await inspect_database(url, _auth_shape))


async def auth_index_names(url: str) -> set[str]:
    return {row[0] for row in await fetch(url, AUTH_INDEX_NAMES[backend(url)])}


async def counts(url: str) -> dict[str, int]:
    return {t: (await fetch(url, f'SELECT COUNT(*) FROM "{t}"'))[0][0] for t in ALL_TABLES}


@pytest.fixture
async def migrated(database_url: str) -> str:
    """`database_url`, upgraded with the `user` and `auth` plugins enabled."""
    await migrator(database_url).upgrade()
    return database_url


@pytest.fixture
async def populated(migrated: str, auth_app: AuthAppFactory) -> str:
    """The migrated database holding one signed-up user (credential, session, token); the
    app that wrote them is stopped, so nothing holds a connection during DDL."""
    async with auth_app() as app:
        await app.signup("ann@example.com", name="Ann")
    return migrated


# -- 1. the migration, up and down ---------------------------------------------------------


async def test_upgrading_only_auth_first_applies_the_user_branch_it_depends_on(
    database_url: str,
) -> None:
    """Stops: a migration without `depends_on` on the user branch, which would create the
    auth tables' foreign keys to a `user` table that does not exist yet (or fail outright)."""
    m = migrator(database_url)

    done = await m.upgrade(["auth"])

    assert done == ["auth"]
    assert {"user", *AUTH_TABLES} <= await tables(database_url)
    assert await branches(m) == {
        "user": (USER_TABLE_REV, USER_REV),  # as far as auth needs it, not to its head
        "auth": (AUTH_REV, AUTH_REV),
    }


async def test_upgrade_runs_the_user_branch_before_the_auth_branch(database_url: str) -> None:
    """Stops: the auth branch being upgraded before the branch its tables point at."""
    order: list[str] = []

    done = await migrator(database_url).upgrade(progress=order.append)

    assert order == done
    assert order.index("user") < order.index("auth")


async def test_upgrade_creates_the_auth_tables_with_their_keys_and_indexes(
    migrated: str,
) -> None:
    """Stops: a migration that leaves out a column, a length, a NOT NULL, a key, the
    cascade on a foreign key, the unique token hash or an index the queries rely on."""
    shape = await auth_shape(migrated)

    assert set(AUTH_TABLES) <= await tables(migrated)
    for name in AUTH_TABLES:
        table = shape[name]
        assert table["columns"] == EXPECTED_COLUMNS[name], name
        assert table["primary_key"] == EXPECTED_PRIMARY_KEYS[name], name
        assert table["foreign_keys"] == EXPECTED_FOREIGN_KEYS[name], name
        assert table["uniques"] == EXPECTED_UNIQUES[name], name
        expected_indexes = {ix: (cols, False) for ix, cols in EXPECTED_INDEXES[name].items()}
        assert table["indexes"] == expected_indexes, name
    if backend(migrated) == "postgresql":  # timestamps must keep their zone
        datetimes = [
            kind
            for name in AUTH_TABLES
            for column, kind in shape[name]["types"].items()
            if EXPECTED_COLUMNS[name][column][0] == "datetime"
        ]
        assert set(datetimes) == {"TIMESTAMP(timezone=True)"}


async def test_the_database_refuses_two_refresh_tokens_with_the_same_hash(
    populated: str,
) -> None:
    """Stops: a missing unique constraint, which would let one token find two rows."""
    [(session_id, token_hash)] = await fetch(
        populated, "SELECT session_id, token_hash FROM auth_refresh_token"
    )

    with pytest.raises(IntegrityError) as caught:
        await execute(
            populated,
            "INSERT INTO auth_refresh_token (id, session_id, token_hash, issued_at) "
            "VALUES ('rtk_copy', :session, :hash, CURRENT_TIMESTAMP)",
            session=session_id,
            hash=token_hash,
        )

    message = str(caught.value)
    assert "uq_auth_refresh_token_token_hash" in message or "token_hash" in message, message
    assert len(await fetch(populated, "SELECT id FROM auth_refresh_token")) == 1


async def test_the_database_refuses_a_session_of_a_user_that_does_not_exist(
    migrated: str,
) -> None:
    """Stops: a missing foreign key (or SQLite running without foreign keys enforced)."""
    with pytest.raises(IntegrityError):
        await execute(
            migrated,
            "INSERT INTO auth_session (id, user_id, created_at, last_used_at, expires_at) "
            "VALUES ('ses_x', 'usr_nobody', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP)",
        )

    assert await fetch(migrated, "SELECT id FROM auth_session") == []


async def test_downgrading_auth_removes_only_its_tables_and_keeps_the_users(
    populated: str,
) -> None:
    """Stops: a downgrade that leaves auth tables or indexes behind, drops or empties the
    `user` table, or moves the user branch."""
    users_before = await fetch(populated, 'SELECT id, email FROM "user"')
    m = migrator(populated)

    await m.downgrade("auth@base")

    remaining = await tables(populated)
    assert not remaining & set(AUTH_TABLES)
    assert "user" in remaining
    assert await auth_index_names(populated) == set()
    assert await fetch(populated, 'SELECT id, email FROM "user"') == users_before
    assert [email for _, email in users_before] == ["ann@example.com"]
    assert await branches(m) == {"user": (USER_REV, USER_REV), "auth": (None, AUTH_REV)}


async def test_upgrading_again_after_a_downgrade_recreates_the_same_working_tables(
    populated: str, auth_app: AuthAppFactory
) -> None:
    """Stops: a downgrade that leaves something the next upgrade trips over (an index, a
    version row), or an upgrade that differs the second time (up → down → up)."""
    before = await auth_shape(populated)
    m = migrator(populated)
    await m.downgrade("auth@base")

    await m.upgrade()

    assert await auth_shape(populated) == before
    assert await branches(m) == {"user": (USER_REV, USER_REV), "auth": (AUTH_REV, AUTH_REV)}
    assert (await counts(populated))["user"] == 1
    async with auth_app() as app:  # and the tables work: a new account signs in
        await app.signup("bob@example.com", name="Bob")
        assert (await app.login("bob@example.com")).status_code == 200
    assert await counts(populated) == {
        "user": 2,
        "auth_credential": 1,
        "auth_session": 2,
        "auth_refresh_token": 2,
    }


# -- 2. the models and the migration agree -------------------------------------------------


async def test_alembic_finds_no_difference_between_the_models_and_the_auth_tables(
    migrated: str,
) -> None:
    """Stops: a model changed without a migration (or the reverse): columns, types,
    nullability, indexes, unique and foreign-key constraints."""
    diffs, warned = await inspect_database(migrated, model_differences(AUTH_TABLES))

    assert diffs == []
    assert warned == []


async def test_migrated_auth_tables_are_the_same_as_ones_built_from_the_models(
    migrated: str, tmp_path: Path
) -> None:
    """What Alembic does not compare (constraint names, ON DELETE), the catalog does."""
    (tmp_path / "models").mkdir()
    async with fresh_database(backend(migrated), tmp_path / "models") as from_models:
        engine = create_async_engine(from_models, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    lambda c: metadata.create_all(
                        c, tables=[metadata.tables[name] for name in EVERY_TABLE]
                    )
                )
        finally:
            await engine.dispose()

        assert await auth_shape(migrated) == await auth_shape(from_models)
        assert await auth_index_names(migrated) == await auth_index_names(from_models)


# -- 3. what a signup stores ---------------------------------------------------------------


async def every_stored_value(app: AuthApp) -> list[str]:
    """Every non-null value of every column of the user and auth tables, as text."""
    values: list[str] = []
    for name in ALL_TABLES:
        for row in await app.rows(f'SELECT * FROM "{name}"'):
            values.extend(str(v) for v in row if v is not None)
    return values


@pytest.mark.real_argon2
async def test_signup_stores_an_owasp_argon2id_hash_and_never_the_password(
    auth: AuthApp,
) -> None:
    """Stops: a plain or weakly hashed password (wrong algorithm, parameters below OWASP's
    minimum), or the password copied into any column."""
    signed_in = await auth.signup("ann@example.com")

    [(user_id, password_hash)] = await auth.rows(
        "SELECT user_id, password_hash FROM auth_credential"
    )
    assert user_id == signed_in["user"]["id"]
    assert password_hash.startswith(OWASP_ARGON2ID_PREFIX), password_hash
    assert PasswordHasher().verify(password_hash, PASSWORD)
    stored = await every_stored_value(auth)
    assert password_hash in stored  # the scan below does see the credential table
    assert not [v for v in stored if PASSWORD in v]


async def test_refresh_tokens_are_stored_only_as_their_sha256(auth: AuthApp) -> None:
    """Stops: a refresh token (or an access token) stored as is, so a copy of the database
    would be enough to take over every session; and a rotation that does not record which
    token replaced which."""
    first = await auth.signup("ann@example.com")
    response = await auth.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()

    rows = await auth.rows(
        "SELECT id, token_hash, used_at, replaced_by FROM auth_refresh_token ORDER BY issued_at"
    )
    by_hash = {token_hash: (row_id, used, by) for row_id, token_hash, used, by in rows}
    assert all(SHA256_HEX.fullmatch(h) for h in by_hash)
    old_hash = hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    new_hash = hashlib.sha256(second["refresh_token"].encode()).hexdigest()
    assert set(by_hash) == {old_hash, new_hash}
    old_id, old_used, old_replaced_by = by_hash[old_hash]
    new_id, new_used, new_replaced_by = by_hash[new_hash]
    assert (old_used is not None, old_replaced_by) == (True, new_id)
    assert (new_used, new_replaced_by) == (None, None)
    assert is_valid_id(old_id, "rtk")
    assert is_valid_id(new_id, "rtk")
    stored = await every_stored_value(auth)
    for token in (first, second):
        for kind in ("refresh_token", "access_token"):
            assert not [v for v in stored if token[kind] in v], kind


async def test_a_session_records_its_client_and_expires_thirty_days_after_creation(
    auth: AuthApp,
) -> None:
    """Stops: a session without the device details the session list shows, an id of the
    wrong kind, or an absolute lifetime other than the configured 30 days."""
    user_agent = "CourtyardTest/1.0 (storage)"
    async with auth.client_from("203.0.113.7") as client:
        response = await client.post(
            "/api/v1/auth/signup",
            json={"email": "ann@example.com", "password": PASSWORD, "name": "Ann"},
            headers={"User-Agent": user_agent},
        )
    assert response.status_code == 201, response.text
    signed_in = response.json()

    statement = text(
        "SELECT id, user_id, ip, user_agent, created_at, last_used_at, expires_at, revoked_at "
        "FROM auth_session"
    ).columns(created_at=UTCDateTime, last_used_at=UTCDateTime, expires_at=UTCDateTime)
    async with auth.app.state.database.write_engine.connect() as connection:
        [row] = (await connection.execute(statement)).all()
    session_id, user_id, ip, agent, created, last_used, expires, revoked = row
    assert is_valid_id(session_id, "ses"), session_id
    claims = jwt.decode(signed_in["access_token"], options={"verify_signature": False})
    assert claims["sid"] == session_id  # the row is the session the token belongs to
    assert user_id == signed_in["user"]["id"]
    assert (ip, agent) == ("203.0.113.7", user_agent)
    assert expires - created == SESSION_LIFETIME
    assert last_used == created
    assert revoked is None
    [(token_session,)] = await auth.rows("SELECT session_id FROM auth_refresh_token")
    assert token_session == session_id


# -- 4. deleting a user's row takes its auth rows with it ----------------------------------


async def test_hard_deleting_a_user_cascades_to_credential_sessions_and_tokens(
    auth: AuthApp,
) -> None:
    """Stops: a foreign key without ON DELETE CASCADE (the delete would fail, or leave
    credentials and live refresh tokens of a user who no longer exists)."""
    ann = await auth.signup("ann@example.com")
    assert (await auth.refresh(ann["refresh_token"])).status_code == 200
    assert (await auth.login("ann@example.com")).status_code == 200
    bob = await auth.signup("bob@example.com")

    await auth.execute('DELETE FROM "user" WHERE id = :id', id=ann["user"]["id"])

    remaining = {
        "credentials": await auth.rows("SELECT user_id FROM auth_credential"),
        "sessions": await auth.rows("SELECT user_id FROM auth_session"),
        "tokens": await auth.rows(
            "SELECT s.user_id FROM auth_refresh_token t JOIN auth_session s ON s.id = t.session_id"
        ),
        "orphan tokens": await auth.rows(
            "SELECT t.id FROM auth_refresh_token t "
            "LEFT JOIN auth_session s ON s.id = t.session_id WHERE s.id IS NULL"
        ),
    }
    bob_id = bob["user"]["id"]
    assert remaining == {
        "credentials": [(bob_id,)],
        "sessions": [(bob_id,)],
        "tokens": [(bob_id,)],
        "orphan tokens": [],
    }
