"""The child process `core.revision_graph.read_in_child` runs: the plugins' migration
folders as JSON on stdin, their revision graph as JSON on stdout, or one line on stderr
saying why the revisions cannot be read (exit 1). Alembic is imported here only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.migrator import read_revision_graph
from core.revision_graph import MigrationError


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
