"""Upgrading a database that already holds notes: the per-owner counter starts from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import Database
from core.errors import ConflictError
from core.kernel import Kernel
from core.migrator import Migrator
from core.settings import CoreSettings
from core.testing.databases import backends, fresh_database

from courtyard_notes.schemas import NoteCreate

FIRST = "4e07a5c10001"  # notes_note and notes_tag, before the counter and `hidden_by`


@pytest.mark.parametrize("backend", backends())
async def test_the_counter_starts_from_the_notes_already_there(
    tmp_path: Path, backend: str
) -> None:
    async with fresh_database(backend, tmp_path) as url:
        settings = CoreSettings(env="test", database_url=url, enabled_plugins="user,notes")
        kernel = Kernel.build(settings, plugin_settings={"notes": {"max_per_user": 3}})
        database: Database = kernel.container.database()
        migrator = Migrator(kernel)
        try:
            await migrator.upgrade()
            ann = await kernel.container_of("user").service().create("ann@example.com", "Ann")
            await migrator.downgrade(f"notes@{FIRST}")
            async with database.write_engine.begin() as connection:
                for n, deleted_at in enumerate(["NULL", "NULL", "CURRENT_TIMESTAMP"]):
                    await connection.execute(
                        text(
                            "INSERT INTO notes_note "
                            "(id, owner_id, title, body, created_at, updated_at, deleted_at) "
                            f"VALUES ('nte_01JD8X000000000000000000{n}A', :owner, 'old', '', "
                            f"CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, {deleted_at})"
                        ),
                        {"owner": ann.id},
                    )

            await migrator.upgrade()

            async with database.write_engine.connect() as connection:
                counters = (await connection.execute(text("SELECT * FROM notes_owner"))).all()
                marks = await connection.execute(text("SELECT hidden_by FROM notes_note"))
                assert [(row.owner_id, row.live) for row in counters] == [(ann.id, 2)]
                assert set(marks.scalars()) == {None}
            notes = kernel.container_of("notes").service()
            await notes.create(ann.id, NoteCreate(title="third"))  # 2 live + 1 = the limit
            with pytest.raises(ConflictError, match="limit of 3 notes"):
                await notes.create(ann.id, NoteCreate(title="fourth"))
        finally:
            await database.dispose()
