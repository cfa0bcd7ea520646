"""Which database a read session goes to, with a replica configured; and the write marks
that decision needs. Without a replica none of this runs (`core.db.engine.Database`).

For each `read_sessions()`:
1. the replica down, or lagging past COURTYARD_DB_REPLICA_MAX_LAG (`ReplicaMonitor`):
   the primary;
2. no caller (`core.caller`: anonymous, a command, a background task), or a caller who
   wrote nothing lately: the replica. Such a read may lag, by up to the max lag;
3. a caller with a mark (`core.db.write_marks`): the replica once it has replayed the
   mark, checked right away and then every `POLL_INTERVAL` for up to
   COURTYARD_DB_REPLICA_WAIT seconds; else the primary. The caller reads what the caller
   wrote (read-your-writes), on any instance when the marks are kept in Redis.

The session's connection to the replica is taken before it is handed out: a replica that
refuses it (or whose pooled connection is found dead) costs the read nothing, which goes
to the primary in the same request, and the replica is marked down. A connection lost
later, once rows may have been returned, fails that read (503) and marks the replica down.

After each commit of a write session by a caller, `remember_write` reads where the
primary's WAL ends and keeps it as the caller's mark: the commit's record is before it.
That is `pg_current_wal_insert_lsn()`, not `pg_current_wal_lsn()` (how far the WAL was
written out): with `synchronous_commit = off` a commit returns before its record is
written, and a mark taken from the write position could stop short of it, the replica
then "having" the caller's write without its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.caller import caller_id
from core.db.errors import is_connection_failure
from core.db.replica import ReplicaMonitor
from core.db.unit_of_work import AppSession
from core.db.write_marks import MarksUnavailable, WriteMarks

logger = logging.getLogger("courtyard.db")

POLL_INTERVAL = 0.02  # seconds between two looks at the replica's replay position

_WAL_END = select(func.pg_current_wal_insert_lsn())


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
        if await self.engine_for_read() is self.replica:
            async with self._sessions(bind=self.replica) as session:
                try:
                    await session.connection()
                except DBAPIError as exc:
                    if not is_connection_failure(exc):
                        raise
                    self.monitor.mark_down(exc)  # and the primary answers, below
                else:
                    yield session
                    return
        async with self._sessions(bind=self.primary) as session:
            yield session

    async def engine_for_read(self) -> AsyncEngine:
        if not self.monitor.usable:
            return self.primary
        caller = caller_id.get()
        if caller is None or self.marks is None:
            return self.replica
        try:
            mark = await self.marks.latest(caller)
        except MarksUnavailable:
            return self.primary  # the caller may have written: only the primary is sure
        if mark is None or await self._replica_has(mark):
            return self.replica
        return self.primary

    async def _replica_has(self, mark: int) -> bool:
        """True once the replica has replayed WAL position `mark`, looked at for up to
        `wait` seconds."""
        if self.monitor.replayed_at_least(mark):
            return True
        deadline = time.monotonic() + self.wait
        while True:
            try:
                replayed = await self.monitor.replayed()
            except SQLAlchemyError:
                return False  # the primary answers instead (a lost connection marked it down)
            if replayed is None:
                return False  # not a standby: its replay cannot be compared
            if replayed >= mark:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, left))

    async def remember_write(self) -> None:
        """After a write session's commit: the caller's new mark (`AppSession`'s
        after-every-commit work; nothing for a write without a caller)."""
        caller = caller_id.get()
        if caller is None or self.marks is None:
            return
        try:
            async with self.primary.connect() as connection:
                position = (await connection.execute(_WAL_END)).scalar()
            if position is not None:
                await self.marks.remember(caller, int(position))
        except (SQLAlchemyError, MarksUnavailable) as exc:
            # The commit stands; the caller's next reads may not show it for a moment.
            logger.warning(
                "the write of %s committed but its mark was not kept (%s): the caller's "
                "reads may lag it",
                caller,
                type(exc).__name__,
            )
