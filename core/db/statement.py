"""`CoreStatement`: a SQLAlchemy Core statement built once and run through SQLAlchemy on an
engine, a connection or a session.

For the few queries of nearly every request (the account check) and every sign-in, an
ORM session and its identity map add nothing: a Core statement on a pooled connection
answers the row as a mapping. Building a `select()` takes CPU time on every call, so a
repository builds its statements once and binds values as parameters.

Targets:
- an `AsyncEngine`: a connection from its pool for this one statement (use an autocommit
  engine: the statement is then its own transaction);
- an `AsyncConnection`: several statements on one pooled connection (one checkout instead
  of one per statement), in the connection's transaction if it began one;
- an `AsyncSession`: the session's transaction, after flushing what the session holds.

Errors are SQLAlchemy's own, so `core.db.errors` classifies them as it does every other.
A statement run outside a transaction (an autocommit engine or connection) whose cached
prepared statement went stale (a column's type changed by a deploy meanwhile) is run once
more: the driver has dropped its stale statements by then, and nothing was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql import Executable

from core.db.errors import is_stale_statement

StatementTarget = AsyncEngine | AsyncConnection | AsyncSession


def dialect_of(target: StatementTarget) -> Dialect:
    """The SQL dialect statements on `target` are written in (for a statement only some
    databases can run, such as a data-modifying WITH on PostgreSQL)."""
    if isinstance(target, AsyncSession):
        return target.get_bind().dialect
    return target.dialect


class CoreStatement:
    """`await CoreStatement(select(...)).first(target, name=value)` → the first row as a
    mapping (or None); `await CoreStatement(update(...)).execute(target, ...)` → the number
    of rows it changed. The statement's parameters are `bindparam(name)`s."""

    __slots__ = ("statement",)

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    async def first(self, target: StatementTarget, **params: Any) -> Mapping[str, Any] | None:
        result = await _run(target, self.statement, params)
        row = result.first()
        return row._mapping if row is not None else None

    async def execute(self, target: StatementTarget, **params: Any) -> int:
        result = await _run(target, self.statement, params)
        return int(result.rowcount)


async def _run(target: StatementTarget, statement: Executable, params: Mapping[str, Any]) -> Any:
    if isinstance(target, AsyncEngine):
        async with target.connect() as connection:
            return await _run(connection, statement, params)
    if isinstance(target, AsyncSession):
        await target.flush()  # rows the session added come first
        target = await target.connection()
    try:
        return await target.execute(statement, params)
    except Exception as error:
        if not (is_stale_statement(error) and _autocommit(target)):
            raise  # in a transaction, which the error has aborted
        return await target.execute(statement, params)


def is_autocommit(execution_options: Mapping[str, Any]) -> bool:
    """True when a connection or engine with these options runs each statement as its own
    transaction (where a stale statement may simply be run again)."""
    return bool(execution_options.get("isolation_level") == "AUTOCOMMIT")


def _autocommit(connection: AsyncConnection) -> bool:
    synced = connection.sync_connection
    return synced is not None and is_autocommit(synced.get_execution_options())
