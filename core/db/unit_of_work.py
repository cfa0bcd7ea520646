"""`AppSession`: the session every request gets, with work deferred until after commit.

A service queues side effects, typically its events, with `session.after_commit(...)`;
they run once the transaction they were queued in has committed, so no listener ever
sees uncommitted data. Work queued in a transaction or savepoint that rolls back is
dropped. This also lets one plugin call another's public API inside its own transaction:
the callee queues its events on the caller's session and they fire when the caller
commits.

The callbacks run when `await session.commit()` returns; a transaction committed another
way (`async with session.begin():`) runs them at the latest when the session closes, which
for a request's session is as soon as the route returns.

A session factory may give each of its sessions work to run after every commit of a
transaction that wrote, after the work queued with `after_commit`:
`async_sessionmaker(engine, ..., info={AFTER_A_WRITE: callback})`, with
`track_writes(engine)` called once. A transaction wrote when an INSERT, UPDATE or DELETE
ran in it, by the ORM's flush or as a Core statement on the session's connection (a write
sent as `text()` is not seen). `core.db.engine.Database` uses it, with a replica
configured, to keep the caller's read-your-writes mark (`core.db.read_routing`): a
transaction that only read needs none, nor the query and the Redis call it costs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Result, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db.errors import is_stale_statement
from core.db.statement import is_autocommit

logger = logging.getLogger("courtyard.db")

AfterCommit = Callable[[], Awaitable[None] | None]

_PENDING = "courtyard.after_commit.pending"  # queued, waiting for their transaction
_READY = "courtyard.after_commit.ready"  # their transaction committed; not run yet
AFTER_A_WRITE = "courtyard.after_a_write"  # a session's own work after a commit that wrote
_WROTE = "courtyard.wrote"  # in a connection's info: a statement that writes ran
_BEGUN_ON = "courtyard.begun_on"  # in a session's info: the connection of its transaction


@dataclass(frozen=True, slots=True)
class _Queued:
    transaction: SessionTransaction | None
    callback: AfterCommit


class _SyncSession(Session):
    """The synchronous session under `AppSession`; its events move the queue along."""


def track_writes(engine: AsyncEngine) -> None:
    """Note on `engine`'s connections when a statement that writes runs (see above)."""
    event.listen(engine.sync_engine, "after_execute", _executed)


def _executed(connection: Connection, statement: Any, *_: Any) -> None:
    if getattr(statement, "is_dml", False):  # a driver-level string has no such flag
        connection.info[_WROTE] = True


@event.listens_for(_SyncSession, "after_begin")
def _began(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    if AFTER_A_WRITE in session.info:  # whether the transaction writes matters
        connection.info.pop(_WROTE, None)  # `info` outlives a checkout: start afresh
        session.info[_BEGUN_ON] = connection


@event.listens_for(_SyncSession, "after_commit")
def _committed(session: Session) -> None:
    """A transaction committed. A savepoint's release fires this too: what was queued
    stays pending until the outermost transaction commits (or is dropped if it rolls
    back)."""
    if session.in_nested_transaction():
        return
    pending: list[_Queued] = session.info.pop(_PENDING, [])
    ready: list[AfterCommit] = session.info.setdefault(_READY, [])
    ready.extend(q.callback for q in pending)
    connection: Connection | None = session.info.pop(_BEGUN_ON, None)
    after_a_write: AfterCommit | None = session.info.get(AFTER_A_WRITE)
    if after_a_write is not None and connection is not None and connection.info.pop(_WROTE, 0):
        ready.append(after_a_write)


@event.listens_for(_SyncSession, "after_soft_rollback")
def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    """Drop what was queued in the transaction (or savepoint) that rolled back."""
    pending: list[_Queued] = session.info.get(_PENDING, [])
    if previous.parent is None:  # the whole transaction (a flush's inner one has a parent)
        pending.clear()
        return
    pending[:] = [q for q in pending if not _within(q.transaction, previous)]


@event.listens_for(_SyncSession, "do_orm_execute")
def _run_stale_statement_again(state: ORMExecuteState) -> Result[Any] | None:
    """Outside a transaction (an autocommit read session), run a statement whose prepared
    form went stale under a schema change once more (see `core.db.errors`). In a
    transaction the error stands: the database aborted it."""
    bind = state.session.get_bind(**state.bind_arguments)
    if not is_autocommit(bind.get_execution_options()):
        return None  # executed as usual
    try:
        return state.invoke_statement()
    except DBAPIError as error:
        if not is_stale_statement(error):
            raise
        return state.invoke_statement()


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


class AppSession(AsyncSession):
    sync_session_class = _SyncSession

    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback` (sync or async) once the current transaction has committed."""
        sync = self.sync_session
        current = sync.get_nested_transaction() or sync.get_transaction()
        self.info.setdefault(_PENDING, []).append(_Queued(current, callback))

    async def commit(self) -> None:
        await super().commit()
        await self._run_ready()

    async def close(self) -> None:
        try:
            await self._run_ready()  # committed through `begin()`: the work is still due
        finally:
            self.info.pop(_PENDING, None)
            self.info.pop(_BEGUN_ON, None)
            await super().close()

    async def _run_ready(self) -> None:
        ready: list[AfterCommit] = self.info.pop(_READY, [])
        for callback in ready:
            try:
                result: Any = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the commit stands: a failing side effect is logged, not raised
                logger.exception("after-commit callback %r failed", callback)
