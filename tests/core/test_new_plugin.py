"""`courtyard new-plugin`: a generated project installs, migrates, serves and passes its own
tests with no edits; bad names and occupied folders are refused in one line.

The generated distribution is installed for real (pip, into a folder of its own) and found
through its entry point by `courtyard` subprocesses, as it would be on a user's machine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import inspect

from core.plugin import discover
from tests.support.courtyard_cli import (
    PROJECT_ROOT,
    assert_one_line_error,
    parse_table,
    rows_by,
    run_courtyard,
)
from tests.support.databases import PG_ENV, inspect_database
from tests.support.plugin_selection import suite_plugins

NAME = "widgets"


def generate(tmp_path: Path, name: str = NAME) -> Path:
    target = tmp_path / f"courtyard-{name}"
    result = run_courtyard("new-plugin", name, "--path", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"created plugin {name!r} in {target}" in result.stdout
    return target


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, Path]:
    """A freshly generated `widgets` project, and the folder it is pip-installed into."""
    project = generate(tmp_path)
    site = tmp_path / "site"
    pip_install(project, site)
    return project, site


def pip_install(project: Path, site: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(site), str(project)],
        check=True, capture_output=True,
    )  # fmt: skip


def python(code: str, *, cwd: Path, site: Path, env: dict[str, str]) -> str:
    """Run `code` in a fresh interpreter that sees the installed plugin; its stdout."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(site), str(PROJECT_ROOT)]))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_own_tests(project: Path, site: Path, *, postgres: bool) -> subprocess.CompletedProcess[str]:
    """The generated project's `pytest`, on PostgreSQL when the test database is there."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    if postgres:
        environ[PG_ENV] = os.environ[PG_ENV]
    environ["PYTHONPATH"] = os.pathsep.join([str(site), str(PROJECT_ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


async def tables(url: str) -> set[str]:
    names: list[str] = await inspect_database(url, lambda c: inspect(c).get_table_names())
    return set(names)


ROUTES = (
    "from core.app import create_app; import json; "
    "print(json.dumps(sorted(create_app().openapi()['paths'])))"
)


async def test_a_generated_plugin_installs_migrates_serves_and_passes_its_tests(
    tmp_path: Path, database_url: str, installed: tuple[Path, Path]
) -> None:
    project, site = installed
    env = {"COURTYARD_DATABASE_URL": database_url}

    listed = run_courtyard("plugins", cwd=tmp_path, pythonpath=[site], env=env)
    assert listed.returncode == 0, listed.stderr
    row = rows_by(parse_table(listed.stdout), "NAME")[NAME]
    assert (row["DISTRIBUTION"], row["ENABLED"]) == ("courtyard-widgets", "yes")

    upgraded = run_courtyard("db", "upgrade", cwd=tmp_path, pythonpath=[site], env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "widgets_item" in await tables(database_url)
    paths = json.loads(python(ROUTES, cwd=tmp_path, site=site, env=env))
    assert {"/api/v1/widgets", "/api/v1/widgets/{item_id}"} <= set(paths)
    counted = run_courtyard(NAME, "count", cwd=tmp_path, pythonpath=[site], env=env)
    assert (counted.returncode, counted.stdout) == (0, "0 items\n"), counted.stderr

    # Its own generated tests: routes over HTTP and the plugin contract, with the kit.
    own = run_own_tests(project, site, postgres=database_url.startswith("postgresql"))
    assert own.returncode == 0, own.stdout + own.stderr
    assert "6 passed" in own.stdout


async def test_a_disabled_generated_plugin_is_absent_and_its_tables_untouched(
    tmp_path: Path, database_url: str, installed: tuple[Path, Path]
) -> None:
    _, site = installed
    env = {"COURTYARD_DATABASE_URL": database_url, "COURTYARD_DISABLED_PLUGINS": NAME}

    upgraded = run_courtyard("db", "upgrade", cwd=tmp_path, pythonpath=[site], env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "widgets_item" not in await tables(database_url)
    assert "user" in await tables(database_url)  # the others were upgraded
    paths = json.loads(python(ROUTES, cwd=tmp_path, site=site, env=env))
    assert not [p for p in paths if p.startswith("/api/v1/widgets")]
    listed = run_courtyard("plugins", cwd=tmp_path, pythonpath=[site], env=env)
    assert rows_by(parse_table(listed.stdout), "NAME")[NAME]["ENABLED"] == "no"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Widgets", "is not a valid plugin name"),
        ("1widgets", "is not a valid plugin name"),
        ("wid-gets", "is not a valid plugin name"),
        ("class", "is not a valid plugin name"),
        ("db", "is reserved by the core"),
        ("user", "a plugin named 'user' is already installed (distribution 'courtyard')"),
    ],
)
def test_bad_names_are_refused_in_one_line(tmp_path: Path, name: str, fragment: str) -> None:
    result = run_courtyard("new-plugin", name, cwd=tmp_path)

    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_occupied_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")

    result = run_courtyard("new-plugin", NAME, "--path", str(target), cwd=tmp_path)

    assert_one_line_error(result, f"{target} already exists and is not an empty folder")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    result = run_courtyard("new-plugin", NAME, "--path", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (target / "courtyard_widgets" / "__init__.py").is_file()


# -- the next steps it prints, run as printed ---------------------------------------------


def throwaway_environment(folder: Path) -> Path:
    """A new virtual environment that sees this one's packages (Courtyard, pip, pytest)
    through a `.pth` file, so that what is installed into it stays in it; its Python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120
    )
    python = folder / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    # Processed like a site folder of its own: the editable install's `.pth` files too.
    ours = sysconfig.get_paths()["purelib"]
    (Path(own) / "courtyard-test-parent.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    return python


def not_activated(folder: Path, database_url: str) -> dict[str, str]:
    """A shell's environment with no virtual environment activated (no venv on PATH, no
    VIRTUAL_ENV, no PYTHONPATH), no COURTYARD_* setting but the database, and pip kept off
    the network (it builds with the setuptools already installed)."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COURTYARD_", "PIP_"))
        and key not in ("PATH", "PYTHONPATH", "VIRTUAL_ENV", PG_ENV)
    }
    environ.update(
        PATH=os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"]),
        COURTYARD_DATABASE_URL=database_url,
        # The suite's own plugins and the new one, whatever else this environment has.
        COURTYARD_ENABLED_PLUGINS=suite_plugins([folder]) + f",{NAME}",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip reads this one inverted: "0" builds without isolation
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return environ


def test_the_printed_next_steps_run_as_printed_without_an_activated_environment(
    tmp_path: Path,
) -> None:
    """Stops: next steps that only work in an activated virtual environment (`pip`,
    `courtyard` and `pytest` not on PATH), or that install into another Python than the
    one that has Courtyard."""
    python = throwaway_environment(tmp_path / "venv")
    database = tmp_path / "app.db"
    environ = not_activated(tmp_path / "venv", f"sqlite+aiosqlite:///{database}")
    target = tmp_path / "my plugins" / f"courtyard-{NAME}"  # a space, quoted in the commands

    created = subprocess.run(
        [str(python), "-m", "core.cli", "new-plugin", NAME, "--path", str(target)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    header, *steps = created.stdout.splitlines()
    assert header.endswith("Next:"), created.stdout
    assert [step[:2] for step in steps] == ["  "] * 4, steps

    outputs = []
    for step in steps:
        ran = subprocess.run(  # noqa: S602 - each printed line, as a shell runs it
            step, shell=True, cwd=tmp_path, env=environ, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, f"{step}\n{ran.stdout}\n{ran.stderr}"
        outputs.append(ran.stdout)

    _, listed, upgraded, tested = outputs
    row = rows_by(parse_table(listed), "NAME")[NAME]
    assert (row["DISTRIBUTION"], row["ENABLED"]) == ("courtyard-widgets", "yes")
    assert f"upgrading {NAME} → head" in upgraded
    with closing(sqlite3.connect(database)) as connection:
        created_tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "widgets_item" in created_tables
    assert "6 passed" in tested
    # Installed into the throwaway environment, not into the one running the tests.
    assert NAME not in {p.name for p in discover()}
