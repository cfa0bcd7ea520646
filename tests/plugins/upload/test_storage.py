"""The `upload_file` table as the database holds it, on SQLite and PostgreSQL.

The migration `c7e1a4f90001` (branch `upload`, depending on the `user` branch) creates it;
these tests read the real catalog and rows with plain SQL, and the objects in storage, so a
model, a migration or a service that stores the wrong thing shows up even when the API
still looks right.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import UTCDateTime, is_valid_id, metadata
from core.kernel import Kernel
from core.migrator import Migrator
from plugins.upload import models as _upload_models  # noqa: F401 - puts upload_file in metadata
from plugins.user import models as _user_models  # noqa: F401 - and the `user` table it needs
from tests.conftest import make_settings
from tests.plugins.upload.conftest import PLUGINS, PNG, UPLOADS, UploadApp, UploadAppFactory
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
USER_TABLE_REV = "9a7e5c310001"  # the user revision upload's migration depends on
UPLOAD_REV = "c7e1a4f90001"
TABLE = "upload_file"
PENDING_TTL = timedelta(hours=24)  # the default `pending_ttl`

EXPECTED_COLUMNS = {  # {column: (kind, length, nullable)}
    "created_at": ("datetime", None, False),
    "updated_at": ("datetime", None, False),
    "deleted_at": ("datetime", None, True),
    "id": ("string", 64, False),
    "owner_id": ("string", 64, False),
    "key": ("string", 512, False),
    "filename": ("string", 255, False),
    "content_type": ("string", 127, False),
    "size": ("int", None, False),
    "status": ("string", 16, False),
    "sha256": ("string", 64, True),
    "expires_at": ("datetime", None, True),
    "completed_at": ("datetime", None, True),
}
EXPECTED_INDEXES = {
    "ix_upload_file_deleted_at": (["deleted_at"], False),
    "ix_upload_file_owner_id": (["owner_id", "id"], False),
    "ix_upload_file_status_expires_at": (["status", "expires_at"], False),
}


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


def migrator(url: str) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins=PLUGINS)))


async def branches(m: Migrator) -> dict[str, tuple[str | None, str | None]]:
    return {
        s.plugin: (s.current, s.head) for s in await m.states() if s.plugin in ("user", "upload")
    }


def _shape(connection: Connection) -> dict[str, Any]:
    """What SQLAlchemy reflects of `upload_file` that the model declares."""
    checks = inspect(connection).get_check_constraints(TABLE)
    return reflected_shape(connection, TABLE) | {"checks": sorted(c["name"] for c in checks)}


async def shape(url: str) -> dict[str, Any]:
    return dict(await inspect_database(url, _shape))


@pytest.fixture
async def populated(database_url: str, upload_app: UploadAppFactory) -> str:
    """The database, migrated, holding one user with a ready upload; the app is stopped."""
    async with upload_app("local") as app:
        await app.upload(await app.user("ann@example.com"))
    return database_url


# -- the migration, up, down and up again ----------------------------------------------------


async def test_upgrading_only_upload_first_applies_the_user_branch(database_url: str) -> None:
    m = migrator(database_url)

    await m.upgrade(["upload"])

    assert {"user", TABLE} <= await tables(database_url)
    assert await branches(m) == {
        "user": (USER_TABLE_REV, USER_REV),  # as far as upload needs it, not to its head
        "upload": (UPLOAD_REV, UPLOAD_REV),
    }


async def test_upgrade_creates_the_table_with_its_keys_checks_and_indexes(
    database_url: str,
) -> None:
    await migrator(database_url).upgrade()

    found = await shape(database_url)

    assert found["columns"] == EXPECTED_COLUMNS
    assert found["primary_key"] == ("pk_upload_file", ["id"])
    assert found["foreign_keys"] == [
        ("fk_upload_file_owner_id_user", ["owner_id"], "user", ["id"], "CASCADE")
    ]
    assert found["uniques"] == [("uq_upload_file_key", ["key"])]
    assert found["checks"] == ["ck_upload_file_size", "ck_upload_file_status"]
    assert found["indexes"] == EXPECTED_INDEXES
    if backend(database_url) == "postgresql":  # timestamps keep their zone
        datetimes = {t for c, t in found["types"].items() if EXPECTED_COLUMNS[c][0] == "datetime"}
        assert datetimes == {"TIMESTAMP(timezone=True)"}


async def test_downgrading_upload_removes_only_its_table_and_keeps_the_users(
    populated: str,
) -> None:
    users_before = await fetch(populated, 'SELECT id, email FROM "user"')
    m = migrator(populated)

    await m.downgrade("upload@base")

    remaining = await tables(populated)
    assert TABLE not in remaining
    assert {"user", "auth_credential"} <= remaining
    assert await fetch(populated, 'SELECT id, email FROM "user"') == users_before
    assert await branches(m) == {"user": (USER_REV, USER_REV), "upload": (None, UPLOAD_REV)}


async def test_upgrading_again_after_a_downgrade_gives_the_same_working_table(
    populated: str, upload_app: UploadAppFactory
) -> None:
    before = await shape(populated)
    m = migrator(populated)
    await m.downgrade("upload@base")

    await m.upgrade()

    assert await shape(populated) == before
    assert await branches(m) == {"user": (USER_REV, USER_REV), "upload": (UPLOAD_REV, UPLOAD_REV)}
    assert await fetch(populated, "SELECT COUNT(*) FROM upload_file") == [(0,)]
    async with upload_app("local") as app:  # and the table works
        ready = await app.upload(await app.user())
        assert ready["status"] == "ready"


# -- the model and the migration agree -------------------------------------------------------


async def test_alembic_finds_no_difference_between_the_model_and_the_table(
    database_url: str,
) -> None:
    await migrator(database_url).upgrade()

    diffs, warned = await inspect_database(database_url, model_differences((TABLE,)))

    assert diffs == []
    assert warned == []


async def test_the_migrated_table_is_the_one_built_from_the_model(
    database_url: str, tmp_path: Path
) -> None:
    """What Alembic does not compare (constraint names, ON DELETE, checks), the catalog does."""
    await migrator(database_url).upgrade()
    (tmp_path / "models").mkdir()
    async with fresh_database(backend(database_url), tmp_path / "models") as from_models:
        engine = create_async_engine(from_models, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    lambda c: metadata.create_all(
                        c, tables=[metadata.tables["user"], metadata.tables[TABLE]]
                    )
                )
        finally:
            await engine.dispose()

        assert await shape(database_url) == await shape(from_models)


# -- the foreign key to the user ---------------------------------------------------------------


async def test_hard_deleting_a_user_row_removes_their_upload_rows(uploads: UploadApp) -> None:
    alice, bob = await uploads.user(), await uploads.user()
    await uploads.upload(alice)
    await uploads.grant(alice)
    kept = await uploads.upload(bob)
    [(alice_id,)] = await uploads.rows(
        "SELECT DISTINCT owner_id FROM upload_file WHERE id <> :id", id=kept["id"]
    )

    await uploads.execute('DELETE FROM "user" WHERE id = :id', id=alice_id)

    assert await uploads.rows("SELECT id FROM upload_file") == [(kept["id"],)]


async def test_the_database_refuses_an_upload_of_a_user_that_does_not_exist(
    database_url: str,
) -> None:
    await migrator(database_url).upgrade()

    with pytest.raises(IntegrityError):
        await execute(
            database_url,
            "INSERT INTO upload_file (id, owner_id, key, filename, content_type, size, status, "
            "created_at, updated_at) VALUES ('upl_x', 'usr_nobody', 'k', 'f', 'image/png', 1, "
            "'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        )

    assert await fetch(database_url, "SELECT id FROM upload_file") == []


# -- what an upload stores ---------------------------------------------------------------------


async def stored(app: UploadApp, upload_id: str) -> dict[str, Any]:
    """The upload's row, with its timestamps read as aware UTC datetimes."""
    statement = text("SELECT * FROM upload_file WHERE id = :id").columns(
        created_at=UTCDateTime,
        updated_at=UTCDateTime,
        deleted_at=UTCDateTime,
        expires_at=UTCDateTime,
        completed_at=UTCDateTime,
    )
    async with app.app.state.database.write_engine.connect() as connection:
        [row] = (await connection.execute(statement, {"id": upload_id})).mappings().all()
    return dict(row)


async def test_an_upload_stores_its_key_cleaned_name_status_and_timestamps(
    uploads: UploadApp,
) -> None:
    alice = await uploads.user()
    me = (await uploads.client.get("/api/v1/users/me", headers=alice)).json()
    granted = await uploads.grant(alice, filename="../../etc/ holi\x07day  photo.png. ")
    assert granted.status_code == 201, granted.text
    upload_id = granted.json()["upload"]["id"]

    waiting = await stored(uploads, upload_id)

    assert is_valid_id(upload_id, "upl")
    assert waiting["key"] == f"uploads/{me['id']}/{upload_id}"
    assert waiting["owner_id"] == me["id"]
    assert (waiting["filename"], waiting["content_type"]) == ("holiday photo.png", "image/png")
    assert (waiting["status"], waiting["size"], waiting["sha256"]) == ("pending", len(PNG), None)
    assert waiting["expires_at"] - waiting["created_at"] == PENDING_TTL
    assert (waiting["completed_at"], waiting["deleted_at"]) == (None, None)

    assert (await uploads.send(granted.json(), PNG)).status_code in (200, 201, 204)
    completed = await uploads.client.post(f"{UPLOADS}/{upload_id}/complete", headers=alice)
    assert completed.status_code == 200, completed.text
    ready = await stored(uploads, upload_id)

    digest = hashlib.sha256(PNG).hexdigest() if uploads.backend == "local" else None
    assert (ready["status"], ready["sha256"], ready["expires_at"]) == ("ready", digest, None)
    assert completed.json()["sha256"] == digest
    assert ready["completed_at"] is not None
    assert ready["completed_at"] >= ready["created_at"]
    assert ready["updated_at"] == ready["completed_at"]
    assert (ready["key"], ready["filename"], ready["deleted_at"]) == (
        waiting["key"], "holiday photo.png", None,
    )  # fmt: skip
    assert uploads.stored_keys() == [ready["key"]]
    if uploads.s3 is not None:
        assert uploads.bucket is not None
        assert uploads.s3.read(uploads.bucket, ready["key"]) == PNG
    else:
        assert uploads.root is not None
        assert (uploads.root / ready["key"]).read_bytes() == PNG


async def test_the_key_prefix_setting_starts_every_key(upload_app: UploadAppFactory) -> None:
    async with upload_app("local", key_prefix="tenant-a/files") as app:
        ready = await app.upload(await app.user())

        [(key,)] = await app.rows("SELECT key FROM upload_file")
        assert key == f"tenant-a/files/{ready['owner_id']}/{ready['id']}"
        assert app.stored_keys() == [key]
