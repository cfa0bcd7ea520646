"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database.

PostgreSQL is used when `COURTYARD_TEST_DATABASE_URL` names a server on which databases
may be created; each throwaway database is created empty and dropped afterwards. When the
variable is set and the server cannot be reached, the test fails: it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

PG_ENV = "COURTYARD_TEST_DATABASE_URL"


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when COURTYARD_TEST_DATABASE_URL is set."""
    return ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


def _server_dsn(database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(os.environ[PG_ENV]).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(backend: str, folder: Path) -> AsyncIterator[str]:
    """Yield the URL of an empty database (a SQLite file in `folder`, or a new PostgreSQL
    database on the COURTYARD_TEST_DATABASE_URL server) and remove it afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / f'test-{uuid.uuid4().hex[:8]}.db'}"
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

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
