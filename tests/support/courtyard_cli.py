"""Run the real `courtyard` console script in a subprocess, and read the tables it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from tests.support.plugin_selection import ENABLED, suite_plugins

COURTYARD = Path(sys.executable).parent / "courtyard"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_courtyard(
    *args: str,
    cwd: Path,
    pythonpath: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    typed: str | None = None,
    stdin: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`courtyard ARGS` with no COURTYARD_* setting inherited except those in `env`.

    `typed` is text typed at its prompts, or `stdin` an open file that is (the child shares
    its offset, so afterwards the file's position tells how much the command read). The
    command then starts in a new session, with no controlling terminal, so a password
    prompt reads it even when the tests themselves run in a terminal.
    """
    return subprocess.run(
        [str(COURTYARD), *args],
        cwd=cwd,
        env=_environment(pythonpath, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=typed,
        stdin=stdin,
        start_new_session=typed is not None or stdin is not None,
    )


def start_courtyard(
    *args: str, cwd: Path, pythonpath: Iterable[Path] = (), env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """`courtyard ARGS` started and left running, in the environment `run_courtyard` gives
    it; read its outcome with `communicate(timeout=…)`."""
    return subprocess.Popen(
        [str(COURTYARD), *args],
        cwd=cwd,
        env=_environment(pythonpath, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _environment(pythonpath: Iterable[Path], env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment without any COURTYARD_* setting but those in `env`; unless
    `env` names the plugins to enable, the suite's own (`tests.support.plugin_selection`):
    the built-in ones and those installed in the `pythonpath` folders."""
    pythonpath = list(pythonpath)
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COURTYARD_") and key != "PYTHONPATH"
    }
    # A wide, colourless terminal so that typer's messages are not wrapped or styled.
    environ.update(COLUMNS="200", NO_COLOR="1", TERM="dumb")
    # The plugin distributions, then this source tree (whatever the venv's install points at).
    environ["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath), str(PROJECT_ROOT)])
    environ.update(env or {})
    environ.setdefault(ENABLED, suite_plugins(pythonpath))
    return environ


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a table printed by `core.cli.output.table`, keyed by its headers.

    Columns are separated by at least two spaces; a cell never contains two spaces in a row.
    A cell beyond the named headers (e.g. an error note) is keyed "".
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    headers = re.split(r" {2,}", lines[0].strip())
    rows = []
    for line in lines[1:]:
        cells = re.split(r" {2,}", line.strip())
        row = dict(zip(headers, cells, strict=False))
        if len(cells) > len(headers):
            row[""] = "  ".join(cells[len(headers) :])
        rows.append(row)
    return rows


def rows_by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {row[column]: row for row in rows}


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *fragments: str, status: int = 2
) -> str:
    """A command that failed cleanly: `status`, nothing on stdout, one `courtyard: error:` line
    on stderr containing every fragment. Returns the line."""
    assert result.returncode == status, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("courtyard: error: ")
    for fragment in fragments:
        assert fragment in line
    return line
