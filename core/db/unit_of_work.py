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

A session factory may give each of its sessions work to run after every commit, before
the work queued with `after_commit`: `async_sessionmaker(..., info={AFTER_EVERY_COMMIT:
callback})`. `core.db.engine.Database` uses it, with a replica configured, to keep the
caller's read-your-writes mark (`core.db.read_routing`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Result, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db.errors import is_stale_statement
from core.db.statement import is_autocommit

logger = logging.getLogger("courtyard.db")

AfterCommit = Callable[[], Awaitable[None] | None]

_PENDING = "courtyard.after_commit.pending"  # queued, waiting for their transaction
_READY = "courtyard.after_commit.ready"  # their transaction committed; not run yet
AFTER_EVERY_COMMIT = "courtyard.after_every_commit"  # a session's own work after each commit


@dataclass(frozen=True, slots=True)
class _Queued:
    transaction: SessionTransaction | None
    callback: AfterCommit


class _SyncSession(Session):
    """The synchronous session under `AppSession`; its events move the queue along."""


@event.listens_for(_SyncSession, "after_commit")
def _committed(session: Session) -> None:
    """The outermost transaction committed (savepoint releases do not fire this)."""
    pending: list[_Queued] = session.info.pop(_PENDING, [])
    ready: list[AfterCommit] = session.info.setdefault(_READY, [])
    every: AfterCommit | None = session.info.get(AFTER_EVERY_COMMIT)
    if every is not None:
        ready.append(every)
    ready.extend(q.callback for q in pending)


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
