"""Which database a read session goes to, with a replica configured; and the write marks
that decision needs. Without a replica none of this runs (`core.db.engine.Database`).

For each `read_sessions()`:
1. the replica down, or lagging past COURTYARD_DB_REPLICA_MAX_LAG (`ReplicaMonitor`):
   the primary;
2. no caller (`core.caller`: anonymous, a command), or a caller who wrote nothing lately:
   the replica. Such a read may lag by up to the max lag, plus what the monitor's view of
   the lag may be behind: a check interval and a check's duration;
3. a caller with a mark (`core.db.write_marks`): the replica once it has replayed the
   mark, looked at on the read's own replica connection right away and then every
   `POLL_INTERVAL`, all within COURTYARD_DB_REPLICA_WAIT seconds; else the primary. The
   caller reads what the caller wrote (read-your-writes), on any instance when the marks
   are kept in Redis. On the read's own connection because several standbys behind one
   address (a load balancer, a DNS name) may each stand elsewhere in the WAL;
4. the caller's mark unknown (Redis does not answer): the primary, which is sure to have
   whatever the caller wrote.

The session's connection to the replica is taken before it is handed out: a replica that
refuses it, is unavailable (too many connections, shutting down), or whose pool has no
connection free in time costs the read nothing, which goes to the primary in the same
request, and the replica is marked down. A connection lost later, once rows may have been
returned, fails that read (503) and marks the replica down.

After each commit of a write session that wrote, by a caller, `remember_write` reads where
the primary's WAL ends and keeps it as the caller's mark: the commit's record is before
it. That is `pg_current_wal_insert_lsn()`, not `pg_current_wal_lsn()` (how far the WAL was
written out): with `synchronous_commit = off` a commit returns before its record is
written, and a mark taken from the write position could stop short of it, the replica
then "having" the caller's write without its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from core.caller import caller_id
from core.db.errors import is_connection_failure, is_database_unavailable
from core.db.replica import ReplicaMonitor
from core.db.unit_of_work import AppSession
from core.db.write_marks import MarksUnavailable, WriteMarks

logger = logging.getLogger("courtyard.db")

POLL_INTERVAL = 0.02  # seconds between two looks at the replica's replay position
# Seconds keeping a caller's mark may take after a commit: the primary's WAL position, then
# the store, which bounds a Redis command itself (REDIS_TIMEOUT) and, when Redis fails,
# stops asking it for a while. Longer than that bound, so Redis's own timeout ends a
# hanging call and is seen as a failure, not cut short from outside.
MARK_TIMEOUT = 2.0

_WAL_END = select(func.pg_current_wal_insert_lsn())
_REPLAYED = select(func.pg_last_wal_replay_lsn())


class ReadRouting:
    """Read sessions on `replica` or `primary` (engines for reads), as decided above.
    `marks` is None when the replica's replay cannot be compared with the primary's WAL
    (not PostgreSQL): then only the replica's health decides."""

    def __init__(
        self,
        *,
        primary: AsyncEngine,
        replica: AsyncEngine,
        monitor: ReplicaMonitor,
        marks: WriteMarks | None,
        wait: float,
        sessions: async_sessionmaker[AppSession],
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.monitor = monitor
        self.marks = marks
        self.wait = wait
        self._sessions = sessions

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AppSession]:
        """A session for a read: `async with database.read_sessions() as session:`."""
        if self.monitor.usable:
            try:
                mark = await self._callers_mark()
            except MarksUnavailable:
                pass  # the caller may have written: only the primary is sure
            else:
                if mark is None or self.wait > 0:  # no wait: a caller's mark means the primary
                    async with self._sessions(bind=self.replica) as session:
                        if await self._serves(session, mark):
                            yield session
                            return
        async with self._sessions(bind=self.primary) as session:
            yield session

    async def _callers_mark(self) -> int | None:
        caller = caller_id.get()
        if caller is None or self.marks is None:
            return None
        return await self.marks.latest(caller)

    async def _serves(self, session: AppSession, mark: int | None) -> bool:
        """True when `session`, bound to the replica, may serve the read: it has its
        connection, on a server that has replayed `mark` (when given)."""
        try:
            connection = await session.connection()
        except SQLAlchemyError as exc:
            if not (is_connection_failure(exc) or is_database_unavailable(exc)):
                raise
            self.monitor.mark_down(exc)  # and the primary answers
            return False
        return mark is None or await self._replayed(connection, mark)

    async def _replayed(self, connection: AsyncConnection, mark: int) -> bool:
        """True once the server behind `connection` has replayed WAL position `mark`,
        looked at for up to `wait` seconds. False when it has not by then, cannot tell (not
        a standby), or fails to answer: the primary answers instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        try:
            async with asyncio.timeout_at(deadline):  # a look that hangs ends with the wait
                while True:
                    replayed = (await connection.execute(_REPLAYED)).scalar()
                    if replayed is None:
                        return False  # not a standby: its replay cannot be compared
                    if int(replayed) >= mark:
                        return True
                    if loop.time() + POLL_INTERVAL >= deadline:
                        return False
                    await asyncio.sleep(POLL_INTERVAL)
        except TimeoutError:  # ours, or the driver's command timeout: cut short mid-statement
            await connection.invalidate()  # not back to the pool in an unknown state
            return False
        except (SQLAlchemyError, OSError):  # a lost connection has marked the replica down
            return False

    async def remember_write(self) -> None:
        """After a write session's commit that wrote: the caller's new mark (nothing for a
        write without a caller). Bounded by `MARK_TIMEOUT`; a failure leaves the commit as
        it is, and only the caller's next reads may not show it for a moment."""
        caller = caller_id.get()
        if caller is None or self.marks is None:
            return
        try:
            async with asyncio.timeout(MARK_TIMEOUT):
                async with self.primary.connect() as connection:
                    position = (await connection.execute(_WAL_END)).scalar()
                if position is not None:
                    await self.marks.remember(caller, int(position))
        except MarksUnavailable:
            return  # logged by the marks, once per outage
        except (SQLAlchemyError, OSError) as exc:  # TimeoutError included
            logger.warning(
                "the write of %s committed but its mark was not kept (%s): the caller's "
                "reads may lag it",
                caller,
                type(exc).__name__,
            )
