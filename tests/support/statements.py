"""Counting the SQL statements an app sends, as the database receives them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@asynccontextmanager
async def sent_statements(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """The SQL statements `engine`'s connections send inside the block, as SQLAlchemy's
    `before_cursor_execute` sees them (every statement goes through SQLAlchemy), not
    counting transaction control, which SQLAlchemy sends through the driver's own calls,
    nor a pooled connection's liveness ping."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
