"""The plugins' revisions as plain data, and where the database stands on them.

Alembic reads the revision files. `RevisionGraph` keeps only what telling where each branch
stands needs: every revision's plugin, its ancestors (every revision it comes after, those
it `depends_on` included) and each branch's head. The commands that migrate make it from
Alembic in their own process (`core.migrator`).

A server makes it in a child process instead (`read_in_child`, which runs
`python -m core.revision_reader`): Alembic, with Mako and, where installed, Pygments, would
otherwise stay in the serving process for its whole life (some 9 MiB) to read a few dozen
revisions once, at startup. `/health/ready` then needs only `alembic_version` and this graph.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import ConfigurationError

if TYPE_CHECKING:
    from core.kernel import Kernel


class MigrationError(ConfigurationError):
    """A migration command cannot run; the message says why in one line."""


@dataclass(frozen=True)
class BranchState:
    plugin: str
    enabled: bool
    current: str | None
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.current == self.head


@dataclass(frozen=True)
class Survey:
    """Where the branches stand, read from one set of `alembic_version` rows."""

    branches: list[BranchState]
    orphaned: tuple[str, ...]  # the rows of revisions no installed plugin has

    @property
    def behind(self) -> list[str]:
        """The enabled plugins whose branch is not at its head."""
        return [s.plugin for s in self.branches if s.enabled and not s.at_head]


@dataclass(frozen=True)
class RevisionGraph:
    """Every installed plugin's revisions, as Alembic reads them."""

    newest_first: tuple[tuple[str, str | None], ...]  # (revision, its plugin) in walk order
    ancestors: Mapping[str, frozenset[str]]  # revision: itself and all it comes after
    heads: Mapping[str, str]  # plugin: the head of its branch

    def orphaned(self, rows: Iterable[str]) -> tuple[str, ...]:
        """The rows of `alembic_version` that no installed plugin's revisions know."""
        return tuple(row for row in rows if row not in self.ancestors)

    def branch_states(
        self, rows: tuple[str, ...], plugins: Iterable[str], enabled: Collection[str]
    ) -> list[BranchState]:
        """Where each of `plugins` stands, given the rows of `alembic_version` (orphaned
        rows are left out).

        alembic_version drops a revision once a revision that `depends_on` it is applied,
        so a branch's position is its newest revision among the ancestors of the rows.
        """
        applied: set[str] = set()
        for row in rows:
            applied |= self.ancestors.get(row, frozenset())
        by_owner: dict[str, str] = {}
        for revision, owner in self.newest_first:
            if owner and owner not in by_owner and revision in applied:
                by_owner[owner] = revision
        return [
            BranchState(name, name in enabled, by_owner.get(name), self.heads.get(name))
            for name in sorted(plugins)
        ]

    def survey(
        self, rows: tuple[str, ...], plugins: Iterable[str], enabled: Collection[str]
    ) -> Survey:
        """Where each of `plugins` stands, and the orphaned rows, given the rows of
        `alembic_version`."""
        return Survey(self.branch_states(rows, plugins, enabled), self.orphaned(rows))

    def to_json(self) -> str:
        return json.dumps(
            {
                "newest_first": self.newest_first,
                "ancestors": {rev: sorted(before) for rev, before in self.ancestors.items()},
                "heads": self.heads,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RevisionGraph:
        data = json.loads(text)
        return cls(
            tuple((revision, owner) for revision, owner in data["newest_first"]),
            {rev: frozenset(before) for rev, before in data["ancestors"].items()},
            dict(data["heads"]),
        )


def orphan_advice(orphaned: tuple[str, ...]) -> str:
    """One line on orphaned rows of `alembic_version`, and the two ways to be rid of them."""
    rows = ", ".join(orphaned)
    return (
        f"alembic_version holds revision {rows} of no installed plugin (uninstalled since "
        "it was migrated; its tables are still there): reinstall it and run "
        "`courtyard db downgrade <plugin>@base`, or drop its tables by hand and delete "
        "that row from alembic_version"
    )


def migration_locations(kernel: Kernel) -> dict[str, Path]:
    """The migrations folder of every installed plugin that has one, enabled or not (a
    disabled plugin's revisions stay known)."""
    locations: dict[str, Path] = {}
    for item, plugin, _error in kernel.installed_plugins():
        path = plugin.migrations_path() if plugin else None
        if path is not None:
            locations[item.name] = path
    return locations


VERSION_TABLE = table("alembic_version", column("version_num"))
_VERSION = VERSION_TABLE.c.version_num


def recorded_versions(connection: Connection) -> tuple[str, ...]:
    """The rows of `alembic_version`, read quietly (no Alembic context, no log lines)."""
    if not inspect(connection).has_table("alembic_version"):
        return ()
    return tuple(connection.execute(select(_VERSION)).scalars())


class BranchWatch:
    """Where the enabled plugins' branches stand, for a server's readiness check: the
    revision graph read once at startup (`load`, in a child process), `alembic_version` on
    every `survey`. The answer for a given set of rows is computed once."""

    def __init__(self, kernel: Kernel) -> None:
        self.locations = migration_locations(kernel)
        self.enabled = [p.name for p in kernel.plugins if p.name in self.locations]
        self.graph: RevisionGraph | None = None
        self.unreadable = "the plugins' revisions have not been read yet"
        self._surveys: dict[tuple[str, ...], Survey] = {}

    async def load(self) -> str | None:
        """Read the revision graph. Returns why the revisions cannot be read (every `survey`
        then raises MigrationError saying so), or None."""
        try:
            self.graph = await read_in_child(self.locations)
        except MigrationError as exc:
            self.unreadable = str(exc)
            return self.unreadable
        return None

    async def survey(self, engine: AsyncEngine) -> Survey:
        if self.graph is None:
            raise MigrationError(self.unreadable)
        async with engine.connect() as connection:
            rows: tuple[str, ...] = await connection.run_sync(recorded_versions)
        if rows not in self._surveys:
            self._surveys[rows] = self.graph.survey(rows, self.locations, self.enabled)
        return self._surveys[rows]


READ_TIMEOUT = 120.0  # seconds for the child to read every revision file

# A process that builds app after app (a test run) reads each set of revisions once.
_read: dict[tuple[tuple[str, str, int, int], ...], RevisionGraph] = {}


async def read_in_child(locations: Mapping[str, Path]) -> RevisionGraph:
    """The revision graph of the plugins whose migrations are in `locations`, read by a
    child process with Alembic (see the module docstring)."""
    key = _fingerprint(locations)
    if key not in _read:
        _read[key] = await asyncio.to_thread(_run_child, locations)
    return _read[key]


def _fingerprint(locations: Mapping[str, Path]) -> tuple[tuple[str, str, int, int], ...]:
    """Each plugin's folder, and each revision file's path, modification time and size."""
    files = []
    for name, folder in sorted(locations.items()):
        files.append((name, str(folder), 0, 0))
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            stat = path.stat()
            files.append((name, str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(files)


def _run_child(locations: Mapping[str, Path]) -> RevisionGraph:
    # The child finds what this process finds: a plugin's revision files may import modules
    # from anywhere on this process's path, not only from where PYTHONPATH says.
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "core.revision_reader"],
            input=json.dumps({name: str(path) for name, path in locations.items()}),
            env=environ,
            capture_output=True,
            text=True,
            timeout=READ_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MigrationError(
            f"cannot read the plugins' revisions: still reading after {READ_TIMEOUT:g} s"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"the reader exited with {done.returncode}"
        raise MigrationError(reason)
    return RevisionGraph.from_json(done.stdout)
