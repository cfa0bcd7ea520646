"""The example third-party plugin, `examples/courtyard-notes`, as its users meet it.

It is pip-installed as a distribution of its own into a folder outside the project (no
dependencies, no build isolation), so it is found only through its entry point, with the
files its wheel really ships (migrations included). Its own test suite then runs there
with the test kit, on SQLite and, when COURTYARD_TEST_DATABASE_URL is set, on PostgreSQL;
and an operator who disables it by configuration sees no trace of it in the app.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text

from core.app import create_app
from tests.conftest import make_settings
from tests.support.courtyard_cli import run_courtyard
from tests.support.databases import PG_ENV, inspect_database

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = PROJECT_ROOT / "examples" / "courtyard-notes"
NOTES_TABLES = ["notes_note", "notes_owner", "notes_tag"]
_GENERATED = shutil.ignore_patterns(
    "build", "*.egg-info", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def notes_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `courtyard-notes` is installed into (`pip install --target`)."""
    # Built from a clean copy, so no stale build output leaks in or lands in the source tree.
    source = shutil.copytree(
        EXAMPLE, tmp_path_factory.mktemp("notes-src") / EXAMPLE.name, ignore=_GENERATED
    )
    target = tmp_path_factory.mktemp("notes-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def test_the_examples_own_test_suite_passes(notes_dist: Path) -> None:
    """Run as its author's CI would. PYTHONSAFEPATH keeps the example's source folder (the
    working directory) off the path, so the tests exercise the installed copy."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COURTYARD_") and key != "PYTHONPATH"
    }
    if os.environ.get(PG_ENV):
        env[PG_ENV] = os.environ[PG_ENV]
    env |= {
        "PYTHONPATH": os.pathsep.join([str(notes_dist), str(PROJECT_ROOT)]),
        "PYTHONSAFEPATH": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"failed|error|skipped", summary), summary


def test_a_disabled_notes_plugin_adds_no_routes(
    notes_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(notes_dist))
    settings = make_settings("sqlite+aiosqlite:///:memory:", disabled_plugins="notes")

    app = create_app(settings)

    kernel = app.state.kernel
    assert kernel.installed["notes"].distribution == "courtyard-notes"  # installed…
    assert "notes" not in kernel.plugin_names  # …but off
    schema = app.openapi()
    assert [p for p in schema["paths"] if p.startswith("/api/v1/notes")] == []
    assert "/api/v1/users/me" in schema["paths"]
    assert "notes" not in {tag["name"] for tag in schema.get("tags", [])}
    assert "note_created" not in app.state.plugin_manager.hook.__dict__


async def test_a_disabled_notes_plugin_gets_no_tables_and_keeps_its_data(
    notes_dist: Path, database_url: str, tmp_path: Path
) -> None:
    """Disabled, `db upgrade` creates nothing of it; enabled, its branch is created; disabled
    again, its tables and rows stay as they were and its command is gone."""

    def courtyard(*args: str, disabled: bool) -> subprocess.CompletedProcess[str]:
        env = {"COURTYARD_DATABASE_URL": database_url}
        if disabled:
            env["COURTYARD_DISABLED_PLUGINS"] = "notes"
        return run_courtyard(*args, cwd=tmp_path, pythonpath=[notes_dist], env=env)

    def notes_tables(connection: Connection) -> list[str]:
        return sorted(t for t in inspect(connection).get_table_names() if t.startswith("notes"))

    upgraded = courtyard("db", "upgrade", disabled=True)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "notes" not in upgraded.stdout
    assert await inspect_database(database_url, notes_tables) == []

    upgraded = courtyard("db", "upgrade", disabled=False)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgrading notes" in upgraded.stdout
    assert await inspect_database(database_url, notes_tables) == NOTES_TABLES
    created = courtyard("users", "create", "ada@example.com", "--name", "Ada", disabled=False)
    assert created.returncode == 0, created.stderr
    owner = re.search(r"\((usr_\w+)\)", created.stdout)
    assert owner is not None, created.stdout
    await inspect_database(database_url, _insert_note(owner.group(1)))

    again = courtyard("db", "upgrade", disabled=True)
    stats = courtyard("notes", "stats", disabled=True)

    assert again.returncode == 0, again.stderr
    assert await inspect_database(database_url, notes_tables) == NOTES_TABLES
    assert await inspect_database(database_url, _note_titles) == ["kept"]
    assert stats.returncode == 2
    assert "No such command 'notes'" in stats.stderr


def _insert_note(owner_id: str) -> Callable[[Connection], None]:
    def insert(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO notes_note (id, owner_id, title, body, created_at, updated_at) "
                "VALUES ('nte_01JD8X0000000000000000000A', :owner, 'kept', '', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"owner": owner_id},
        )
        connection.commit()

    return insert


def _note_titles(connection: Connection) -> list[str]:
    return list(connection.execute(text("SELECT title FROM notes_note")).scalars())
