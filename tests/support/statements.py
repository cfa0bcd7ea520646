"""Counting the SQL statements an app sends, as the database receives them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


@asynccontextmanager
async def sent_statements(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """The SQL statements `engine`'s connections send inside the block, not counting
    transaction control nor a pooled connection's liveness ping.

    SQLAlchemy's `before_cursor_execute` sees what runs through SQLAlchemy. On PostgreSQL,
    statements sent to the asyncpg connection directly (a `HotRead`) are added from
    asyncpg's query logger, on every connection checked out meanwhile: it reports what
    `Connection.fetch…` sends, not SQLAlchemy's prepared statements, so nothing counts
    twice. asyncpg calls its loggers soon after a statement, not at once, so the block's
    end gives them one turn of the event loop before counting stops."""
    seen: list[str] = []
    sync_engine = engine.sync_engine

    def record(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(sync_engine, "before_cursor_execute", record)
    if sync_engine.dialect.driver != "asyncpg":
        try:
            yield seen
        finally:
            event.remove(sync_engine, "before_cursor_execute", record)
        return

    def logged(query: Any) -> None:
        sql = query.query.strip()
        if sql != ";" and sql.split(" ", 1)[0].upper() not in TRANSACTION_CONTROL:
            seen.append(sql)

    watched: list[Any] = []

    def watch(dbapi_connection: Any, *_: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(logged)
        watched.append(driver)

    event.listen(sync_engine, "checkout", watch)
    try:
        yield seen
    finally:
        await asyncio.sleep(0)  # the loggers' calls asyncpg has scheduled
        event.remove(sync_engine, "before_cursor_execute", record)
        event.remove(sync_engine, "checkout", watch)
        for driver in watched:
            driver.remove_query_logger(logged)
