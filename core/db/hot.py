"""Hot statements: the few queries that run on nearly every request (the account check) or
every sign-in, at driver speed.

Through SQLAlchemy a one-row query costs several times what the driver needs for it (an
execution context, a result wrapper, greenlet switches), and an ORM flush more again. A
`HotStatement` compiles its statement once per dialect and, on PostgreSQL, hands the SQL
straight to the pooled asyncpg connection (which prepares it once per connection),
applying the columns' own bind and result processing, so values go in and come out
exactly as SQLAlchemy would send and give them. On other databases, and inside an ORM
session, it runs through SQLAlchemy as usual.

It runs on one of three targets:
- an `AsyncEngine`: a connection from its pool for this one statement, no transaction;
- a `HotConnection`: several statements on one pooled connection, each on its own
  (`hot_connection(engine)`, one checkout instead of one per statement) or in one
  transaction (`hot_transaction(engine)`), committed when the block ends without an error;
- an `AsyncSession`: the session's own transaction, for code that shares one.

A driver error is raised as SQLAlchemy's error would be (`IntegrityError` for a violated
constraint, otherwise `DBAPIError`), so an outage is still a 503, and a connection the
server dropped is invalidated rather than put back in the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameters, in the order the SQL numbers them
    defaults: Mapping[str, Any]  # the values bound in the statement itself
    binds: tuple[Processor, ...]
    columns: tuple[str, ...]  # what the statement returns (none for a plain write)
    results: tuple[Processor, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.defaults, **params}
        return [
            value if bind is None else bind(value)
            for value, bind in zip((values[name] for name in self.names), self.binds, strict=True)
        ]

    def row(self, record: Any) -> dict[str, Any]:
        return {
            name: value if result is None else result(value)
            for name, value, result in zip(self.columns, record, self.results, strict=True)
        }


class HotConnection:
    """One pooled connection for several `HotStatement`s: each in its own implicit
    transaction (`hot_connection`), or all in one (`hot_transaction`).

    On asyncpg it is the pool's own checkout (`pooled`) and its driver connection: no
    SQLAlchemy `Connection` is built around it, as no statement goes through one. On other
    drivers it is an `AsyncConnection` that statements run on as usual."""

    __slots__ = ("connection", "dialect", "driver", "pooled")

    def __init__(
        self,
        dialect: Dialect,
        *,
        connection: AsyncConnection | None = None,
        pooled: PoolProxiedConnection | None = None,
    ) -> None:
        self.dialect = dialect
        self.connection = connection  # through SQLAlchemy (drivers other than asyncpg)
        self.pooled = pooled
        # The asyncpg connection, or None to go through SQLAlchemy.
        self.driver: Any = pooled.driver_connection if pooled is not None else None

    async def invalidate(self) -> None:
        """Close the connection for good: it never goes back to the pool."""
        if self.pooled is not None:
            if self.pooled.is_valid:
                # Outside a greenlet the asyncpg adapter terminates the connection at once
                # rather than waiting on a graceful close of what is probably lost.
                self.pooled.invalidate()
        elif self.connection is not None and not self.connection.invalidated:
            await self.connection.invalidate()


HotTarget = AsyncEngine | HotConnection | AsyncSession


def dialect_of(target: HotTarget) -> Dialect:
    """The SQL dialect statements on `target` are written in (for a statement only some
    databases can run, such as a data-modifying WITH on PostgreSQL)."""
    if isinstance(target, AsyncSession):
        return target.get_bind().dialect
    return target.dialect


class HotStatement:
    """`await HotStatement(select(...)).first(target, name=value)` → the first row as a
    mapping (or None); `await HotStatement(update(...)).execute(target, ...)` → the number of
    rows it changed. The statement's parameters are `bindparam(name)`s."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    async def first(self, target: HotTarget, **params: Any) -> Mapping[str, Any] | None:
        if isinstance(target, AsyncEngine):
            async with hot_connection(target) as checked_out:
                return await self.first(checked_out, **params)
        if isinstance(target, AsyncSession) or target.driver is None:
            connection = await _connection_of(target)
            row: Any = (await connection.execute(self.statement, params)).first()
            return row._mapping if row is not None else None
        compiled = self._compiled_for(target.dialect)
        record = await _guarded(
            target, compiled.sql, target.driver.fetchrow(compiled.sql, *compiled.arguments(params))
        )
        return compiled.row(record) if record is not None else None

    async def execute(self, target: HotTarget, **params: Any) -> int:
        if isinstance(target, AsyncEngine):
            async with hot_connection(target) as checked_out:
                return await self.execute(checked_out, **params)
        if isinstance(target, AsyncSession) or target.driver is None:
            connection = await _connection_of(target)
            result: Any = await connection.execute(self.statement, params)
            return int(result.rowcount)
        compiled = self._compiled_for(target.dialect)
        status = await _guarded(
            target, compiled.sql, target.driver.execute(compiled.sql, *compiled.arguments(params))
        )
        # asyncpg answers with the command tag: "INSERT 0 1", "UPDATE 3", "DELETE 0".
        count = str(status).rpartition(" ")[2]
        return int(count) if count.isdigit() else -1

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        known = self._compiled.get(dialect.name)
        if known is None:
            known = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return known


@asynccontextmanager
async def hot_connection(engine: AsyncEngine) -> AsyncIterator[HotConnection]:
    """One pooled connection for `HotStatement`s, no transaction (use an autocommit engine:
    each statement is then its own transaction)."""
    if engine.dialect.driver != "asyncpg":
        async with engine.connect() as connection:
            yield HotConnection(engine.dialect, connection=connection)
        return
    async with _checked_out(engine) as target:
        yield target


@asynccontextmanager
async def hot_transaction(engine: AsyncEngine) -> AsyncIterator[HotConnection]:
    """One pooled connection in one transaction for `HotStatement`s: committed when the
    block ends, rolled back when it raises (a connection that cannot even roll back is
    invalidated). On SQLite the engine's own `begin()` is used, with its `BEGIN IMMEDIATE`."""
    if engine.dialect.driver != "asyncpg":
        async with engine.connect() as connection, connection.begin():
            yield HotConnection(engine.dialect, connection=connection)
        return
    async with _checked_out(engine) as target:
        transaction = target.driver.transaction()
        try:
            await _guarded(target, "BEGIN", transaction.start())
            yield target
            await _guarded(target, "COMMIT", transaction.commit())
        except BaseException:
            await _abandon(target, transaction)
            raise


@asynccontextmanager
async def _checked_out(engine: AsyncEngine) -> AsyncIterator[HotConnection]:
    """A connection straight from the engine's pool (asyncpg), given back when done.

    The pool's checkout and checkin run as they do under an `AsyncConnection` (its events,
    the idle ping, reset on return, a new connection when needed), in a greenlet when
    they may talk to the server; what is skipped is the `Connection` built around the
    checkout, which costs as much again and which no hot statement uses."""
    pool = engine.sync_engine.pool
    try:
        pooled = await greenlet_spawn(pool.connect)
    except Exception as error:
        if not isinstance(error, engine.dialect.loaded_dbapi.Error):
            raise  # not the driver's: as `engine.connect()` lets it through
        raise _connect_error(engine, error) from error
    try:
        yield HotConnection(engine.dialect, pooled=pooled)
    finally:
        if isinstance(pool, QueuePool) and pool.checkedin() < pool.size():
            # It goes back to the queue (or to a waiter), which says nothing to the server:
            # no greenlet needed. Only a connection beyond the pool's size is closed.
            pooled.close()
        else:
            await greenlet_spawn(pooled.close)


def _connect_error(engine: AsyncEngine, error: Exception) -> Exception:
    """The driver's error for a connection it could not open (the server shutting down,
    too many clients, bad credentials...) as `engine.connect()` raises it: SQLAlchemy's
    `DBAPIError` of the matching kind around it, so that it is classified (503 or not) as
    every other database error is. (SQLAlchemy would also run `handle_error` listeners on
    the way; the app registers none.)"""
    dialect = engine.dialect
    return DBAPIError.instance(
        None,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=engine.sync_engine.hide_parameters,
        connection_invalidated=dialect.is_disconnect(error, None, None),  # type: ignore[arg-type]
        dialect=dialect,
    )


async def _abandon(target: HotConnection, transaction: Any) -> None:
    """After a failure (a cancelled request included), leave no transaction open on a
    connection that goes back to the pool: roll back, or invalidate the connection."""
    try:
        if target.driver.is_closed():
            raise ConnectionError("the server closed the connection")
        await transaction.rollback()
    except BaseException:
        await target.invalidate()


async def _connection_of(target: AsyncSession | HotConnection) -> AsyncConnection:
    """Where a statement runs through SQLAlchemy: a session's connection (after flushing
    what the session holds, so rows it added come first), as plain Core."""
    if isinstance(target, AsyncSession):
        await target.flush()
        return await target.connection()
    assert target.connection is not None, "a HotConnection without a driver has a connection"
    return target.connection


async def _guarded(target: HotConnection, sql: str, call: Any) -> Any:
    """Await a driver call, raising its error as SQLAlchemy would."""
    try:
        return await call
    except Exception as error:
        # Told apart as SQLAlchemy's own errors are (an outage is a 503), and a connection
        # the server dropped never goes back to the pool.
        lost = bool(target.driver.is_closed())
        if lost:
            await target.invalidate()
        violated = str(getattr(error, "sqlstate", "")).startswith("23")  # integrity class
        kind = IntegrityError if violated else DBAPIError
        raise kind(sql, None, error, connection_invalidated=lost) from error


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    selected = _returned_columns(statement)
    return _Compiled(
        sql=compiled.string,
        names=names,
        defaults={name: value for name, value in compiled.params.items() if value is not None},
        binds=tuple(compiled.binds[name].type.bind_processor(dialect) for name in names),
        columns=tuple(str(column.key) for column in selected),
        results=tuple(column.type.result_processor(dialect, None) for column in selected),
    )


def _returned_columns(statement: Executable) -> list[Any]:
    """The columns a SELECT selects, or an INSERT, UPDATE or DELETE returns (none without
    RETURNING)."""
    if isinstance(statement, Select):
        return list(statement.selected_columns)
    return list(getattr(statement, "_returning", ()) or ())
