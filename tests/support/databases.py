"""Throwaway databases: a SQLite file, or a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import metadata

PG_ENV = "COURTYARD_TEST_DATABASE_URL"


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when COURTYARD_TEST_DATABASE_URL is set."""
    return ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


def _server_dsn(database: str | None = None) -> str:
    url = make_url(os.environ[PG_ENV]).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of an empty database that is removed afterwards.

    An unreachable PostgreSQL server fails the test: it is never skipped.
    """
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name = f"courtyard_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_server_dsn(), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            make_url(_server_dsn(name))
            .set(drivername="postgresql+asyncpg")
            .render_as_string(hide_password=False)
        )
    finally:
        admin = await asyncpg.connect(_server_dsn(), timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def inspect_database(url: str, work: Callable[[Connection], Any]) -> Any:
    """Run `work` (e.g. a SQLAlchemy `inspect`) on a throwaway connection to `url`."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _table_of(diff: Any) -> str | None:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(diff, list):  # modify_* differences come grouped per column
        return _table_of(diff[0])
    kind, *args = diff
    if kind in ("add_column", "remove_column") or kind.startswith("modify_"):
        return str(args[1])  # (schema, table name, ...)
    target = args[0]  # a Table, or an Index / constraint that belongs to one
    return str(getattr(target, "table", target).name)


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
            diffs = [d for d in compare_metadata(context, metadata) if _table_of(d) in tables]
        return diffs, [str(w.message) for w in caught]

    return compare
