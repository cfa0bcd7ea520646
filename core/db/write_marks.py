"""Where a caller's last write stands in the primary's WAL, kept a short while: the marks
read-your-writes is built on (`core.db.read_routing`).

A mark is the primary's `pg_current_wal_insert_lsn()` read just after the caller's
transaction committed (why not `pg_current_wal_lsn()`: `core.db.read_routing`), as an
integer (a byte position in the WAL). A replica that has replayed that far shows the
caller everything the caller wrote. A mark is kept `MARK_MARGIN` seconds longer than
COURTYARD_DB_REPLICA_MAX_LAG: a replica reads are sent to is no further behind than that
(the max lag, and what the monitor's view of it may be behind), so by then it has the
caller's writes anyway.

- `LocalWriteMarks`: this process's memory; a caller's next request reaching another
  instance, or another worker process of this one, does not know of the write (and may
  read an older state there).
- `RedisWriteMarks` (COURTYARD_REDIS_URL, `core.db.redis_write_marks`, which alone imports
  the Redis client: a process without COURTYARD_REDIS_URL never loads it): one key per
  caller, shared by every instance;
  a mark only ever moves forward (two instances committing for the same caller at once).
  A Redis that fails is left alone for `REDIS_RETRY_AFTER` seconds: meanwhile every
  caller's mark is unknown at once (their reads go to the primary) instead of each read
  waiting up to `REDIS_TIMEOUT` for it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

logger = logging.getLogger("courtyard.db")

# Seconds a mark outlives COURTYARD_DB_REPLICA_MAX_LAG: the monitor's view of the lag is up
# to a check old, and a check takes a moment.
MARK_MARGIN = 5.0
LOCAL_MARKS_LIMIT = 100_000  # callers remembered by one process; the oldest go first
REDIS_TIMEOUT = 1.0  # seconds; a mark that cannot be read by then: the read goes to the primary
REDIS_RETRY_AFTER = 5.0  # seconds Redis is not asked after it failed
REDIS_MAX_CONNECTIONS = 50  # per process; a command finding all in use: the mark is unknown
REDIS_KEY_PREFIX = "courtyard:write-mark:"


class MarksUnavailable(Exception):
    """The shared store cannot be reached: a caller's mark is unknown (the caller's read
    goes to the primary) or was not kept."""


class WriteMarks(Protocol):
    async def remember(self, caller: str, position: int) -> None:
        """Keep `position` as `caller`'s mark, unless a later one is kept already."""

    async def latest(self, caller: str) -> int | None:
        """`caller`'s mark, or None when the caller wrote nothing lately."""

    async def close(self) -> None:
        """Release connections (at shutdown)."""


class LocalWriteMarks:
    """Marks in this process, each for `keep_for` seconds, at most `limit` callers."""

    def __init__(self, keep_for: float, limit: int = LOCAL_MARKS_LIMIT) -> None:
        self.keep_for = keep_for
        self.limit = limit
        # caller → (position, expires at); oldest first, since every mark lives as long.
        self._marks: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def remember(self, caller: str, position: int) -> None:
        now = time.monotonic()
        held = self._marks.pop(caller, None)
        if held is not None and held[1] > now:
            position = max(position, held[0])
        self._marks[caller] = (position, now + self.keep_for)
        while self._marks:
            _, expires = next(iter(self._marks.values()))
            if expires > now and len(self._marks) <= self.limit:
                break
            self._marks.popitem(last=False)

    async def latest(self, caller: str) -> int | None:
        held = self._marks.get(caller)
        if held is None or held[1] <= time.monotonic():
            return None
        return held[0]

    async def close(self) -> None:
        self._marks.clear()


def open_write_marks(redis_url: str | None, keep_for: float) -> WriteMarks:
    """Marks shared through Redis when `redis_url` is set, else this process's own."""
    if redis_url:
        from core.db.redis_write_marks import RedisWriteMarks

        return RedisWriteMarks(redis_url, keep_for)
    return LocalWriteMarks(keep_for)
