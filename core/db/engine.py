"""Write (primary) and read (replica) engines with their session factories."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool

from core.db.pool import FairAsyncQueuePool
from core.db.read_routing import ReadRouting
from core.db.replica import ReplicaMonitor
from core.db.unit_of_work import AFTER_A_WRITE, AfterCommit, AppSession, track_writes
from core.db.write_marks import MARK_MARGIN, WriteMarks, open_write_marks
from core.settings import CoreSettings


def _engine_options(
    url: str, settings: CoreSettings, *, migrations: bool, one_connection: bool = False
) -> dict[str, Any]:
    """Pool and connection options. A migration engine keeps no pool and sets no statement
    timeout (DDL on a large table may take long), but keeps the connect timeout. A
    `one_connection` engine (the replica monitor's, PostgreSQL) pools a single connection.
    """
    options: dict[str, Any] = {"echo": settings.db_echo}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": settings.db_connect_timeout}
        if parsed.database in (None, "", ":memory:"):
            options["poolclass"] = StaticPool  # one shared in-memory database
        elif migrations:
            options["poolclass"] = NullPool
        return options
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout,
        "server_settings": {"application_name": "courtyard"},
    }
    if settings.db_pooler == "transaction":
        connect_args.update(_through_a_transaction_pooler())
    if migrations:
        options["poolclass"] = NullPool
    else:
        if settings.db_statement_timeout and settings.db_pooler == "none":
            timeout_ms = str(int(settings.db_statement_timeout * 1000))
            connect_args["server_settings"]["statement_timeout"] = timeout_ms
        # A client-side bound on every command, pre-ping included: a server that went
        # silent (network partition) must fail the request, not hang the worker.
        connect_args["command_timeout"] = (
            settings.db_statement_timeout or 30.0
        ) + settings.db_connect_timeout
        options.update(
            poolclass=FairAsyncQueuePool,  # first come, first served (see core.db.pool)
            pool_size=1 if one_connection else settings.db_pool_size,
            max_overflow=0 if one_connection else settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_recycle=1800,
        )
    options["connect_args"] = connect_args
    return options


def _through_a_transaction_pooler() -> dict[str, Any]:
    """asyncpg's options behind a pooler in transaction mode, as SQLAlchemy's asyncpg
    dialect documents them: a client's next transaction may run on another server
    connection, where a prepared statement kept from an earlier one does not exist (and
    its name may be taken by another client's). So no statement is kept for reuse, by
    SQLAlchemy's cache or asyncpg's, and every prepared statement gets a name of its own.
    """
    return {
        "prepared_statement_cache_size": 0,
        "statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__courtyard_{uuid.uuid4().hex}__"


_RETURNED_AT = "courtyard.returned_at"


def _ping_idle_connections(engine: AsyncEngine, idle_after: float) -> None:
    """Ping a pooled connection before handing it out only if it sat idle for more than
    `idle_after` seconds; a dead one is replaced (the pool retries the checkout).

    `pool_pre_ping` pings on every checkout, and for asyncpg that ping is a transaction of
    its own (BEGIN, an empty statement, ROLLBACK): more than the query of a typical read. A
    connection handed back a moment ago was alive a moment ago; one idle for a while may
    have been closed by the server, a restart or a proxy. A connection that fails in use
    is still handled by SQLAlchemy: the error invalidates every pooled connection, so the
    requests after an outage get fresh ones.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned = record.info.pop(_RETURNED_AT, None)
        if returned is None or time.monotonic() - returned <= idle_after:
            return  # new, or back in the pool only a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):  # type: ignore[arg-type]
                raise
            alive = False
        if not alive:
            raise DisconnectionError("the pooled connection was closed while idle")


def _network_errors_as_the_drivers(engine: AsyncEngine) -> None:
    """Raise an OSError met while connecting (no route to the host, a refused or timed-out
    connection, a name that does not resolve) as the driver's `OperationalError`.

    A driver raises what the server says as its own errors, which SQLAlchemy wraps in a
    `DBAPIError` that `core.db.errors` classifies; but it lets the socket's own failures
    through raw, and a raw OSError tells nothing about where it came from. Turned into the
    driver's error here, at the one place connections are opened, every connection failure
    reaches the one classification (an outage, 503), on every path that connects, while an
    OSError of the app's own (a file, a socket of its own) stays what it is.

    Likewise when a URL names several hosts with `target_session_attrs` (failover) and each
    answered but none would do (e.g. none accepts writes while a replica is being promoted):
    the driver reports that as an internal error, yet it is an outage to retry, not a bug."""
    dbapi = engine.dialect.loaded_dbapi

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise dbapi.OperationalError(f"cannot reach the database: {exc}") from exc
        except Exception as exc:
            if not _no_host_matched(exc):
                raise
            raise dbapi.OperationalError(f"no database host will do now: {exc}") from exc


def _no_host_matched(error: BaseException | None) -> bool:
    """True when `error` (or its cause) is asyncpg's "none of the hosts match the target
    attribute requirement" (not imported: only a connection of asyncpg raises it)."""
    driver = sys.modules.get("asyncpg")
    while driver is not None and error is not None:
        if isinstance(error, driver.exceptions.TargetServerAttributeNotMatched):
            return True
        error = error.__cause__
    return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Connection) -> None:
    """Start SQLite transactions with the write lock taken, waiting up to the busy timeout.

    The driver would begin a transaction only at the first write, so reads before it saw no
    snapshot at all (a check-then-write such as "is this the last admin?" could race), and a
    deferred transaction that reads then writes can fail at once with "database is locked".
    Taking the lock up front serialises writers instead. Autocommit (read) sessions skip it.
    """
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    url: str, settings: CoreSettings, *, migrations: bool = False, one_connection: bool = False
) -> AsyncEngine:
    """An engine for `url` configured from `settings` (see `_engine_options`)."""
    options = _engine_options(url, settings, migrations=migrations, one_connection=one_connection)
    engine = create_async_engine(url, **options)
    _network_errors_as_the_drivers(engine)
    if options.get("poolclass") is not NullPool:
        _ping_idle_connections(engine, settings.db_ping_idle_after)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # An in-memory database is one connection shared by every session: there is no
        # lock to queue on, only one transaction at a time (tests and throwaway use).
        if options.get("poolclass") is not StaticPool:
            event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
    elif settings.db_pooler == "transaction":
        _one_transaction_at_a_time(engine, 0.0 if migrations else settings.db_statement_timeout)
    return engine


def _one_transaction_at_a_time(engine: AsyncEngine, statement_timeout: float) -> None:
    """What a pooler in transaction mode needs of each transaction, whose server connection
    serves other clients before and after it:

    - `SET LOCAL statement_timeout` as it begins: the pooler refuses the setting as a
      startup parameter, and a session-wide `SET` would outlive the transaction;
    - `DEALLOCATE ALL` as it ends: asyncpg prepares every statement under a name of its
      own and closes it only as the next statement is prepared, by then maybe on another
      server connection, so without this each transaction would leave its last statement
      behind on the server. (Sent through the driver as a plain query, with no prepared
      statement of its own. In a transaction the server has aborted it cannot run; what
      that transaction prepared stays until the connection closes.)"""
    timeout = f"SET LOCAL statement_timeout = {int(statement_timeout * 1000)}"

    @event.listens_for(engine.sync_engine, "begin")
    def _began(connection: Connection) -> None:
        if statement_timeout:
            connection.exec_driver_sql(timeout)

    @event.listens_for(engine.sync_engine, "commit")
    @event.listens_for(engine.sync_engine, "rollback")
    def _ending(connection: Connection) -> None:
        if connection.invalidated or connection.closed:
            return  # lost: the rollback that follows only tidies up, and the server is gone
        dbapi_connection: Any = connection.connection.dbapi_connection
        try:
            dbapi_connection.run_async(lambda driver: driver.execute("DEALLOCATE ALL"))
        except Exception:  # an aborted transaction: nothing to be done
            return


class Database:
    """The app's engines and session factories. Reads go to the replica when one is
    configured and fit to serve them (`core.db.read_routing`).

    Reads run outside a transaction (autocommit), which saves the BEGIN and ROLLBACK round
    trips (and, on SQLite, never queues behind a writer) — except behind a transaction
    pooler (`COURTYARD_DB_POOLER=transaction`), which keeps a client on one server
    connection only for a transaction: there every statement runs in one, so that a
    statement is prepared and run on the same server connection, under its timeout.

    - `write_sessions()`: a unit of work on the primary, which the caller commits;
    - `read_sessions()`: a read that may come from the replica (`async with` only);
    - `primary_read_sessions()` (or `primary_read_engine` for a `CoreStatement`): a read
      that must not lag behind the primary (e.g. "is this account still active?").

    With a replica, `start()` (the app's lifespan) starts watching it, on a connection of
    the monitor's own to each server; `dispose()` stops."""

    write_sessions: async_sessionmaker[AppSession]
    read_sessions: Callable[[], AbstractAsyncContextManager[AppSession]]
    primary_read_sessions: async_sessionmaker[AppSession]

    def __init__(self, settings: CoreSettings) -> None:
        self._autocommit_reads = settings.db_pooler == "none"
        self.write_engine = create_engine(settings.database_url, settings)
        read_url = settings.read_database_url or settings.database_url
        if read_url != settings.database_url:
            self.read_engine = create_engine(read_url, settings)
        else:
            self.read_engine = self.write_engine
        self.primary_read_engine = self._for_reads(self.write_engine)
        self.primary_read_sessions = _sessions(self.primary_read_engine)
        self.replica: ReplicaMonitor | None = None
        self._marks: WriteMarks | None = None
        if not self.has_replica:
            self.write_sessions = _sessions(self.write_engine)
            self.read_sessions = self.primary_read_sessions
            return
        replica_reads = self._for_reads(self.read_engine)
        self.replica = ReplicaMonitor(
            watched=replica_reads,
            primary=self._for_reads(
                create_engine(settings.database_url, settings, one_connection=True)
            ),
            replica=self._for_reads(create_engine(read_url, settings, one_connection=True)),
            max_lag=settings.db_replica_max_lag,
            check_timeout=settings.db_connect_timeout,
        )
        if self.replica.streams_wal:  # marks are WAL positions: PostgreSQL only
            keep_for = settings.db_replica_max_lag + MARK_MARGIN
            self._marks = open_write_marks(settings.redis_url, keep_for)
        routing = ReadRouting(
            primary=self.primary_read_engine,
            replica=replica_reads,
            monitor=self.replica,
            marks=self._marks,
            wait=settings.db_replica_wait,
            sessions=_sessions(replica_reads),
        )
        self.read_sessions = routing.read_session
        self.write_sessions = _sessions(
            self.write_engine,
            after_a_write=routing.remember_write if self._marks is not None else None,
        )

    def _for_reads(self, engine: AsyncEngine) -> AsyncEngine:
        if not self._autocommit_reads:
            return engine
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def has_replica(self) -> bool:
        return self.read_engine is not self.write_engine

    async def start(self) -> None:
        """Start watching the replica (when one is configured): its health and lag."""
        if self.replica is not None:
            await self.replica.start()

    async def ping(self) -> None:
        """Run `SELECT 1` on the primary; raises when it cannot be reached. (The replica's
        state is the monitor's, `replica`: without a replica the instance still serves,
        from the primary.)"""
        async with self.primary_read_engine.connect() as connection:
            await connection.execute(select(1))

    async def dispose(self) -> None:
        """Stop watching the replica and release every connection; each step runs
        whatever the others do."""
        async with AsyncExitStack() as steps:  # run last to first
            if self.has_replica:
                steps.push_async_callback(self.read_engine.dispose)
            steps.push_async_callback(self.write_engine.dispose)
            if self._marks is not None:
                steps.push_async_callback(self._marks.close)
            if self.replica is not None:
                steps.push_async_callback(self.replica.close)


def _sessions(
    engine: AsyncEngine, *, after_a_write: AfterCommit | None = None
) -> async_sessionmaker[AppSession]:
    if after_a_write is None:
        return async_sessionmaker(engine, class_=AppSession, expire_on_commit=False)
    track_writes(engine)
    info = {AFTER_A_WRITE: after_a_write}
    return async_sessionmaker(engine, class_=AppSession, expire_on_commit=False, info=info)
