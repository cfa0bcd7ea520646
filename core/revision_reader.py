"""Alembic's side of the plugins' revision graph, and the child process that prints it.

`python -m core.revision_reader` is what `core.revision_graph.read_in_child` runs: the
plugins' migration folders as JSON on stdin, their revision graph as JSON on stdout, or
one line on stderr saying why the revisions cannot be read (exit 1). It imports Alembic
and what the revision files import, and nothing of the app (`core.migrator` makes the
same graph in-process for the commands that migrate).
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError

from core.revision_graph import MigrationError, RevisionGraph

ENV_DIR = Path(__file__).parent / "migrations"


def alembic_config(locations: Mapping[str, Path]) -> Config:
    """Alembic's configuration for the plugins whose revisions are in `locations`."""
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("path_separator", "os")
    existing = [str(p) for p in locations.values() if p.is_dir()]
    cfg.set_main_option("version_locations", os.pathsep.join(existing))
    return cfg


def read_scripts(cfg: Config) -> ScriptDirectory:
    """Every plugin's revision files, read now (MigrationError if they cannot be)."""
    script = ScriptDirectory.from_config(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script.get_heads()  # reads every plugin's revision files now
        except CommandError as exc:
            raise MigrationError(f"cannot read the plugins' revisions: {exc}") from None
        except KeyError as exc:  # Alembic warns first, then fails on the lookup
            reason = str(caught[-1].message) if caught else f"{exc} is not present"
            raise MigrationError(f"cannot read the plugins' revisions: {reason}") from None
    return script


def owner_in(folders: Mapping[str, Path], revision: Script) -> str | None:
    """The plugin whose folder (resolved) holds `revision`'s file."""
    parents = Path(revision.path).resolve().parents
    return next((name for name, folder in folders.items() if folder in parents), None)


def graph_of(script: ScriptDirectory, locations: Mapping[str, Path]) -> RevisionGraph:
    """The revisions of `script` as plain data, each owned by the plugin whose folder in
    `locations` holds its file."""
    resolved = {name: path.resolve() for name, path in locations.items()}
    scripts = list(script.walk_revisions())  # newest first
    owners = {s.revision: owner_in(resolved, s) for s in scripts}  # each file resolved once
    ancestors = {
        s.revision: frozenset(a.revision for a in script.iterate_revisions(s.revision, "base") if a)
        for s in scripts
    }
    heads: dict[str, str] = {}
    for head in script.get_heads():  # includes heads another branch depends on
        if (name := owners.get(head)) is not None:
            heads[name] = head
    return RevisionGraph(tuple(owners.items()), ancestors, heads)


def read_revision_graph(locations: Mapping[str, Path]) -> RevisionGraph:
    """The revision graph of the plugins whose revisions are in `locations` (what a server's
    child process prints: core/revision_reader.py)."""
    return graph_of(read_scripts(alembic_config(locations)), locations)


def main() -> int:
    locations = {name: Path(path) for name, path in json.load(sys.stdin).items()}
    try:
        graph = read_revision_graph(locations)
    except MigrationError as exc:
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # a revision file that fails to import: one line all the same
        print(f"cannot read the plugins' revisions: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(graph.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
