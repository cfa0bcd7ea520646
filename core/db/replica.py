"""The replica as the app sees it: reachable or not, and how far behind the primary.

`ReplicaMonitor.usable` tells the read routing (`core.db.read_routing`) whether reads may
go to the replica. A background task the app's lifespan starts checks the replica every
`CHECK_INTERVAL` seconds, on engines of its own (one connection to each server, made and
released with the monitor): a pool the app's requests have filled up would otherwise make
a busy replica look down, or leave the primary's WAL position unread and the lag unknown.

- down: a check failed, or a read's connection to the replica was refused or lost (the
  app's replica engine's `handle_error` event marks it down at once, so the reads that
  follow go to the primary); the monitor tries the replica again every `RETRY_DOWN_AFTER`
  seconds. A check that began before the replica was marked down does not clear the mark:
  what it saw may predate the failure;
- behind by more than COURTYARD_DB_REPLICA_MAX_LAG: skipped until a check finds it within.

Lag (PostgreSQL streaming replication): the primary's `pg_current_wal_lsn()`, read first,
against the replica's `pg_last_wal_replay_lsn()`. Replayed that far means no lag: an idle
primary writes nothing, and its replica is then as fresh as it is. Otherwise the replica
misses commits, and its data is at most as old as the smaller of
- `now() - pg_last_xact_replay_timestamp()` on the replica: what it misses was committed
  after the last transaction it replayed;
- the time since the start of the last check whose primary WAL position the replica has
  replayed since: it had everything committed before that check. (After an idle hour, the
  first write would otherwise look like an hour of lag until the replica replays it.)

The first look, when it finds the replica behind by more than the max lag, concludes
nothing: on a primary idle until a moment ago, the replica's last replayed transaction
may be an hour old while it misses only a second of WAL. The replica stays "not checked
yet" (reads go to the primary, nothing is logged), and the next check, a second later,
compares with that look's position.
When the primary cannot be read, the lag grows from the last time the replica was seen
caught up (it is not frozen at its last value).

A replica that is not a standby (`pg_last_wal_replay_lsn()` is NULL: logically replicated,
or a copy) or not PostgreSQL is only checked for being reachable.

Without the task (a command, a test's own `Database`), the replica counts as usable until a
read finds it down, and is tried again `RETRY_DOWN_AFTER` seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import event, func, literal, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.errors import is_connection_failure

logger = logging.getLogger("courtyard.db")

CHECK_INTERVAL = 1.0  # seconds between two checks of a replica that answers
RETRY_DOWN_AFTER = 3.0  # seconds a replica found down is skipped before it is tried again
FIRST_CHECK_WAIT = 1.0  # seconds `start` waits for the first check (a silent replica: less)

_WRITTEN = select(func.pg_current_wal_lsn())
_STANDBY_VIEW = select(
    func.pg_last_wal_replay_lsn(), func.now(), func.pg_last_xact_replay_timestamp()
)
_REACHABLE = select(literal(1))


class ReplicaMonitor:
    """Health and lag of the replica the app reads from through `watched` (the app's engine
    for replica reads, whose failed connections mark the replica down). The checks run on
    `primary` and `replica`, engines of the monitor's own to the same servers, which
    `close` disposes. `check_timeout` bounds each look at a server (a replica that does not
    answer by then is down).

    `probe_context` makes the context each check runs in: with tracing on, one that keeps
    the checks out of the traces (core/telemetry.py sets it, so that the database layer
    imports nothing of OpenTelemetry)."""

    def __init__(
        self,
        *,
        watched: AsyncEngine,
        primary: AsyncEngine,
        replica: AsyncEngine,
        max_lag: float,
        check_timeout: float,
    ) -> None:
        self.watched = watched
        self.primary = primary
        self.replica = replica
        self.max_lag = max_lag
        self.check_timeout = check_timeout
        self.streams_wal = primary.dialect.name == replica.dialect.name == "postgresql"
        self._down: str | None = None  # why, while the replica is down
        self._down_since = 0.0
        self._lag: float | None = None  # seconds behind at the last check; None: unmeasured
        self._checked = False  # a check has completed and told where the replica stands
        self._caught_up_at: float | None = None  # monotonic start of a check it had caught up with
        self._previous: tuple[float, int] | None = None  # (start, primary's WAL) of the last look
        self._first_check: asyncio.Event | None = None  # made on the loop that starts it
        self._task: asyncio.Task[None] | None = None
        self.probe_context: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        event.listen(watched.sync_engine, "handle_error", self._failed)

    # What the routing and the readiness check ask

    @property
    def usable(self) -> bool:
        """True when reads may go to the replica now."""
        if self._down is not None:
            if self._task is not None or time.monotonic() - self._down_since < RETRY_DOWN_AFTER:
                return False
            self._down = None  # nobody checks it: try it again after the back-off
        if self._task is not None and not self._checked:
            return False  # monitored, not checked yet (a moment after start)
        return self._lag is None or self._lag <= self.max_lag

    @property
    def checked(self) -> bool:
        """True once a check has told where the replica stands, or it was found down."""
        return self._checked or self._down is not None

    @property
    def trouble(self) -> str | None:
        """Why reads skip the replica ("unreachable (ConnectionRefusedError)", "14 s
        behind"), or None when they use it (or it is not checked yet: see `checked`)."""
        if self._down is not None:
            return self._down
        if self._lag is not None and self._lag > self.max_lag:
            if math.isinf(self._lag):
                return "behind by an unknown time"
            return f"{self._lag:.0f} s behind" if self._lag >= 10 else f"{self._lag:.1f} s behind"
        return None

    def mark_down(self, error: BaseException) -> None:
        """Skip the replica from now on, until a check finds it back."""
        reason = f"unreachable ({_root_cause(error)})"
        if self._down is None:
            logger.warning("the replica is down (%s): reads go to the primary", reason)
        self._down = reason
        self._down_since = time.monotonic()

    # Checking

    async def check(self) -> None:
        """One look at the replica (and the primary's WAL position): reachability, lag."""
        with self.probe_context():
            await self._check()

    async def _check(self) -> None:
        started = time.monotonic()
        try:
            written = await self._written() if self.streams_wal else None
            try:
                async with asyncio.timeout(self.check_timeout):
                    async with self.replica.connect() as connection:
                        view = await connection.execute(
                            _STANDBY_VIEW if self.streams_wal else _REACHABLE
                        )
                        row = view.one()
            except Exception as exc:  # whatever it is, the replica cannot serve reads now
                self.mark_down(exc)
                return
            if self._down is not None and self._down_since < started:
                logger.info("the replica answers again")
                self._down = None
            if not self.streams_wal or self._measure(started, written, *row):
                self._checked = True
        finally:
            if self._first_check is not None:
                self._first_check.set()

    def _measure(
        self, started: float, written: int | None, replayed: Any, now: Any, last_replay: Any
    ) -> bool:
        """Take the lag from one look; False when that look tells nothing yet."""
        if replayed is None:  # not a standby: its lag is not measured
            self._set_lag(None)
            return True
        replayed = int(replayed)
        previous = self._previous
        if written is not None:
            self._previous = (started, written)
            if replayed >= written:
                self._caught_up_at = started
                self._set_lag(0.0)
                return True
        if previous is not None and replayed >= previous[1]:
            self._caught_up_at = max(previous[0], self._caught_up_at or 0.0)
        bounds = []
        if self._caught_up_at is not None:
            bounds.append(time.monotonic() - self._caught_up_at)
        if last_replay is not None:
            bounds.append(max(0.0, (now - last_replay).total_seconds()))
        lag = min(bounds, default=math.inf)
        if lag > self.max_lag and not self._checked and previous is None:
            return False  # one look, nothing to compare with: the next check tells
        self._set_lag(lag)
        return True

    def _set_lag(self, lag: float | None) -> None:
        was_behind = self.trouble is not None
        self._lag = lag
        behind = self.trouble
        if behind and not was_behind:
            logger.warning("the replica is %s: reads go to the primary", behind)
        elif was_behind and not behind:
            logger.info("the replica has caught up: reads use it again")

    async def _written(self) -> int | None:
        """The primary's WAL position, or None when it cannot tell now (its own readiness
        check reports that)."""
        try:
            async with asyncio.timeout(self.check_timeout):
                async with self.primary.connect() as connection:
                    position = (await connection.execute(_WRITTEN)).scalar()
        except Exception:
            return None
        return None if position is None else int(position)

    def _failed(self, context: ExceptionContext) -> None:
        """The app's replica engine's `handle_error`: a connection refused or lost, on any
        read."""
        if context.is_disconnect or is_connection_failure(context.original_exception):
            self.mark_down(context.original_exception)

    # The background task

    async def start(self) -> None:
        """Check the replica from now on; wait up to `FIRST_CHECK_WAIT` for the first check
        (reads go to the primary until it is done)."""
        if self._task is not None:
            return
        first_check = self._first_check = asyncio.Event()
        self._task = asyncio.create_task(self._watch(), name="courtyard-replica-monitor")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_check.wait(), FIRST_CHECK_WAIT)

    async def stop(self) -> None:
        """Stop checking. A cancellation of the task calling this is passed on."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # aimed at our caller, not (only) at the monitor's task

    async def close(self) -> None:
        """Stop checking, stop listening to the app's replica engine, and release the
        monitor's connections; each step runs whatever the others do."""
        async with contextlib.AsyncExitStack() as steps:  # run last to first
            steps.push_async_callback(self.replica.dispose)
            steps.push_async_callback(self.primary.dispose)
            steps.callback(event.remove, self.watched.sync_engine, "handle_error", self._failed)
            await self.stop()

    async def _watch(self) -> None:
        while True:
            if self._down is not None:  # found down (by a check or a read): the back-off
                await asyncio.sleep(self._down_since + RETRY_DOWN_AFTER - time.monotonic())
            try:
                await self.check()
            except Exception:  # a bug here must not end the checks
                logger.exception("checking the replica failed")
            if self._down is None:
                await asyncio.sleep(CHECK_INTERVAL)


def _root_cause(error: BaseException) -> str:
    """The name of the innermost error (`ConnectionRefusedError`, not SQLAlchemy's wrapper).
    A timeout is named as such: `asyncio.timeout` raises its TimeoutError from the
    CancelledError it turned into it, which is no cause of ours."""
    while error.__cause__ is not None and not isinstance(error, TimeoutError):
        error = error.__cause__
    return type(error).__name__
