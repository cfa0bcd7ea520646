"""`courtyard notes stats`, run as an operator would: the real command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from core.db import Database
from core.kernel import Kernel
from core.settings import CoreSettings
from core.testing.databases import backends, fresh_database

from courtyard_notes.schemas import NoteCreate

PLUGINS = "user,notes"


async def courtyard(url: str, *args: str) -> tuple[int, str]:
    """Run `courtyard ARGS` against the database at `url`; (exit status, output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    env |= {"COURTYARD_DATABASE_URL": url, "COURTYARD_ENABLED_PLUGINS": PLUGINS}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from core.cli import main; main()", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def add_notes(url: str, counts: dict[str, tuple[int, int]]) -> dict[str, str]:
    """Create a user per email with (live, deleted) notes; their ids by email."""
    kernel = Kernel.build(CoreSettings(env="test", database_url=url, enabled_plugins=PLUGINS))
    database: Database = kernel.container.database()
    ids: dict[str, str] = {}
    try:
        for email, (live, deleted) in counts.items():
            user = await kernel.container_of("user").service().create(email, email.split("@")[0])
            notes = kernel.container_of("notes").service()
            made = [
                await notes.create(user.id, NoteCreate(title=f"n{i}"))
                for i in range(live + deleted)
            ]
            for note in made[:deleted]:
                await notes.delete(user.id, note.id)
            ids[email] = user.id
    finally:
        await database.dispose()
    return ids


@pytest.mark.parametrize("backend", backends())
async def test_stats_count_each_owners_notes_and_the_total(tmp_path: Path, backend: str) -> None:
    async with fresh_database(backend, tmp_path) as url:
        status, output = await courtyard(url, "db", "upgrade")
        assert status == 0, output
        assert "upgrading notes" in output
        ids = await add_notes(url, {"bob@example.com": (1, 0), "ada@example.com": (3, 1)})

        status, output = await courtyard(url, "notes", "stats")

    assert status == 0, output
    assert [line.split() for line in output.strip().splitlines()] == [
        ["OWNER", "NOTES", "DELETED"],
        [ids["ada@example.com"], "3", "1"],
        [ids["bob@example.com"], "1", "0"],
        ["total", "4", "1"],
    ]


async def test_stats_of_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert (await courtyard(url, "db", "upgrade"))[0] == 0

    status, output = await courtyard(url, "notes", "stats")

    assert status == 0, output
    assert [line.split() for line in output.strip().splitlines()] == [
        ["OWNER", "NOTES", "DELETED"],
        ["total", "0", "0"],
    ]
