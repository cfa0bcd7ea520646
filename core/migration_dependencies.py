"""The `depends_on` that `courtyard db revision --autogenerate` writes into a revision.

A revision whose tables have foreign keys into another plugin's table must not run before
the revision of that plugin's branch that makes the table exist: for each such table, the
new revision `depends_on` the first revision of the other branch after which the table is
there. That revision is found by running the other branch, oldest revision first, on a
scratch in-memory SQLite database, and looking for the table after each one. Whatever a
revision does to make the table (`op.create_table`, a rename from an older name, a helper
function that takes the name as an argument), the answer is the revision at which the
table first exists, the least any revision pointing at it needs.

A branch that does not run on SQLite (a revision written for PostgreSQL only) stops the
search: its head is taken instead, which has the table too, at the price of a dependency
stricter than needed (downgrading below that head then needs `--cascade`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.operations.ops import UpgradeOps
from sqlalchemy import Connection, MetaData, create_engine, inspect

logger = logging.getLogger("courtyard.migrations")


def referenced_tables(upgrade_ops: UpgradeOps) -> set[str]:
    """The tables that the foreign keys a revision creates point at (new tables' keys,
    new columns' and keys added on their own)."""
    found: set[str] = set()
    for diff in _flat(upgrade_ops.as_diffs()):
        kind = diff[0]
        if kind == "add_table":
            keys: Iterable[Any] = diff[1].foreign_keys
        elif kind == "add_column":
            keys = diff[3].foreign_keys
        elif kind == "add_fk":
            keys = diff[1].elements
        else:
            continue
        found.update(_table_of(key.target_fullname) for key in keys)
    return found


def tables_pointed_at(metadata: MetaData, owns: Callable[[str], bool]) -> set[str]:
    """The tables that the foreign keys of the tables `owns` accepts point at: all that a
    revision of their plugin can need, known before Alembic runs one (a search runs
    Alembic too, and two cannot run at once)."""
    return {
        _table_of(key.target_fullname)
        for table in metadata.tables.values()
        if owns(table.name)
        for key in table.foreign_keys
    }


def _flat(diffs: Iterable[Any]) -> Iterable[tuple[Any, ...]]:
    """Alembic gives the changes of one column as a list of tuples; the rest are tuples."""
    for diff in diffs:
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


def _table_of(target: str) -> str:
    """`user` from a foreign key's `user.id` (or `schema.user.id`)."""
    return target.rsplit(".", 1)[0].rsplit(".", 1)[-1]


def first_revisions_with(
    tables: Collection[str], branch: Sequence[str], config: Callable[[Connection], Config]
) -> dict[str, str]:
    """For each of `tables` found, the first revision of `branch` (its revision ids, oldest
    first) after which the table exists. `config` gives the Alembic configuration that
    runs the environment on a connection.

    Every revision's dependencies on other branches run too, as Alembic applies them.
    """
    wanted = set(tables)
    found: dict[str, str] = {}
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            cfg = config(connection)
            for revision in branch:
                command.upgrade(cfg, revision)
                present = set(inspect(connection).get_table_names())
                found.update((name, revision) for name in (wanted - found.keys()) & present)
                if found.keys() >= wanted:
                    break
    except Exception as exc:  # whatever a plugin's revision raises: the caller falls back
        logger.warning(
            "depends_on: the revisions making %s do not run on SQLite (%s); "
            "the new revision depends on their branch's head instead",
            ", ".join(sorted(wanted - found.keys())),
            exc,
        )
    finally:
        engine.dispose()
    return found
