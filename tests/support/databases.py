"""Database helpers for the project's tests; throwaway databases come from the kit."""

from __future__ import annotations

import sqlite3
import uuid
import warnings
from collections.abc import Callable, Collection
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.db import metadata
from core.db.engine import create_engine
from core.kernel import Kernel
from core.migrator import Migrator
from core.settings import CoreSettings
from core.testing.conformance import table_of_difference
from core.testing.databases import PG_ENV, backends, fresh_database

__all__ = [
    "PG_ENV",
    "MigratedCopies",
    "app_engine",
    "backends",
    "execute",
    "fetch",
    "fresh_database",
    "inspect_database",
    "kill_app_connections",
    "model_differences",
]


def app_engine(url: str) -> AsyncEngine:
    """A pool-less engine built the way the app builds its own (SQLite: foreign keys on)."""
    return create_engine(url, CoreSettings(env="test", database_url=url), migrations=True)


async def fetch(url: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of `query`, straight from the database behind the app's back."""
    engine = app_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(query), params)
            return [tuple(row) for row in result.all()]
    finally:
        await engine.dispose()


async def execute(url: str, statement: str, **params: Any) -> None:
    """Run `statement` in a transaction of its own, behind the app's back."""
    engine = app_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement), params)
    finally:
        await engine.dispose()


async def kill_app_connections(database_url: str) -> int:
    """Close every connection the app holds on this PostgreSQL database, server side (as a
    restart or an operator would); how many there were."""
    where = (
        "FROM pg_stat_activity WHERE datname = :db AND application_name = 'courtyard'"
        " AND pid <> pg_backend_pid()"
    )
    database = database_url.rsplit("/", 1)[1]
    rows = await fetch(database_url, f"SELECT count(*) {where}", db=database)
    await execute(database_url, f"SELECT pg_terminate_backend(pid) {where}", db=database)
    return int(rows[0][0])


async def inspect_database(url: str, work: Callable[[Connection], Any]) -> Any:
    """Run `work` (e.g. a SQLAlchemy `inspect`) on a throwaway connection to `url`."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def model_differences(
    tables: Collection[str],
) -> Callable[[Connection], tuple[list[Any], list[str]]]:
    """For `inspect_database`: Alembic's differences between the models in
    `core.db.metadata` and the database, for `tables` only, and any warnings it gave while
    comparing (it warns when it skips what it cannot reflect)."""

    def compare(connection: Connection) -> tuple[list[Any], list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            found = compare_metadata(context, metadata)
            diffs = [d for d in found if table_of_difference(d) in tables]
        # A ResourceWarning is the garbage collector finalising something else (another
        # test's leftover client) while Alembic ran, not a warning of the comparison.
        return diffs, [str(w.message) for w in caught if w.category is not ResourceWarning]

    return compare


async def tables(url: str) -> set[str]:
    """The names of the tables in the database at `url`."""
    return set(await inspect_database(url, lambda c: inspect(c).get_table_names()))


def column_kind(column_type: Any) -> tuple[str, int | None]:
    """A reflected column type as the models declare it: (python type, string length)."""
    python_type = column_type.python_type.__name__
    if python_type == "datetime":
        return "datetime", None
    if python_type == "str":
        return "string", column_type.length
    return python_type, None


def reflected_shape(connection: Connection, table: str) -> dict[str, Any]:
    """What SQLAlchemy reflects of `table` that a model declares: columns (kind, length,
    nullability, type), primary key, foreign keys with their ON DELETE, unique
    constraints and indexes."""
    found = inspect(connection)
    columns = found.get_columns(table)
    pk = found.get_pk_constraint(table)
    return {
        "columns": {c["name"]: (*column_kind(c["type"]), bool(c["nullable"])) for c in columns},
        "types": {c["name"]: repr(c["type"]) for c in columns},
        "primary_key": (pk["name"], pk["constrained_columns"]),
        "foreign_keys": sorted(
            (
                fk["name"],
                fk["constrained_columns"],
                fk["referred_table"],
                fk["referred_columns"],
                fk["options"].get("ondelete"),
            )
            for fk in found.get_foreign_keys(table)
        ),
        "uniques": sorted(
            (u["name"], u["column_names"]) for u in found.get_unique_constraints(table)
        ),
        # PostgreSQL also lists the index behind each unique constraint: that one is
        # already in "uniques".
        "indexes": {
            i["name"]: (i["column_names"], bool(i["unique"]))
            for i in found.get_indexes(table)
            if "duplicates_constraint" not in i
        },
    }


class MigratedCopies:
    """SQLite databases at the enabled plugins' heads, migrated once per plugin selection.

    Migrating an empty database runs every plugin's Alembic revisions, and Alembic reads
    and compiles each revision file every time: the larger part of starting an app in a
    SQLite test. So the first test of a plugin selection migrates a template file and the
    next ones get a copy of it (SQLite's backup API), which holds the same schema and the
    same recorded revisions. Only an untouched database is replaced by a copy: one a test
    has already written to is migrated for real, so tests of the migrations themselves
    see Alembic run.

    PostgreSQL databases are always migrated: there a copy (dropping the test's empty
    database and creating it again from a template) took as long as the migration.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._templates: dict[tuple[Any, ...], Path] = {}

    async def migrate(self, settings: CoreSettings) -> None:
        """Bring `settings.database_url` to the heads of the enabled plugins' branches."""
        target = make_url(settings.database_url)
        migrator = Migrator(Kernel.build(settings))
        if target.get_backend_name() != "sqlite" or not _no_file_or_empty(
            Path(target.database or "")
        ):
            await migrator.upgrade()
            return
        key = (
            tuple(sorted((name, str(path)) for name, path in migrator.locations.items())),
            tuple(migrator.enabled),
        )
        template = self._templates.get(key)
        if template is None:
            template = self._folder / f"template-{uuid.uuid4().hex[:8]}.db"
            at_template = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{template}"}
            )
            await Migrator(Kernel.build(at_template)).upgrade()
            self._templates[key] = template
        with (
            closing(sqlite3.connect(template)) as original,
            closing(sqlite3.connect(target.database or "")) as copy,
        ):
            original.backup(copy)


def _no_file_or_empty(path: Path) -> bool:
    return not path.exists() or path.stat().st_size == 0
