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
- `RedisWriteMarks` (COURTYARD_REDIS_URL): one key per caller, shared by every instance;
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

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisError

logger = logging.getLogger("courtyard.db")

# Seconds a mark outlives COURTYARD_DB_REPLICA_MAX_LAG: the monitor's view of the lag is up
# to a check old, and a check takes a moment.
MARK_MARGIN = 5.0
LOCAL_MARKS_LIMIT = 100_000  # callers remembered by one process; the oldest go first
REDIS_TIMEOUT = 1.0  # seconds; a mark that cannot be read by then: the read goes to the primary
REDIS_RETRY_AFTER = 5.0  # seconds Redis is not asked after it failed
REDIS_MAX_CONNECTIONS = 50  # per process; a command finding all in use: the mark is unknown
REDIS_KEY_PREFIX = "courtyard:write-mark:"

# Set the key to ARGV[1] (16 hex digits: strings compare as the positions do) for ARGV[2]
# milliseconds, unless it holds a later position already.
_MOVE_FORWARD = """
local held = redis.call('GET', KEYS[1])
if held and held >= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


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


class RedisWriteMarks:
    """Marks in Redis, one key per caller that expires after `keep_for` seconds. Every
    command is tried once and bounded by `REDIS_TIMEOUT`; after a failure Redis is not
    asked for `REDIS_RETRY_AFTER` seconds. A Redis that does not answer costs one request
    at most `REDIS_TIMEOUT` every so often, and the reads meanwhile go to the primary."""

    def __init__(self, url: str, keep_for: float) -> None:
        self.keep_for_ms = max(1, round(keep_for * 1000))
        self.client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            max_connections=REDIS_MAX_CONNECTIONS,
        )
        self._move_forward = self.client.register_script(_MOVE_FORWARD)
        self._failing = False
        self._skip_until = 0.0  # monotonic time before which Redis is not asked

    async def remember(self, caller: str, position: int) -> None:
        self._skip_while_failing()
        try:
            await self._move_forward(
                keys=[REDIS_KEY_PREFIX + caller], args=[f"{position:016x}", self.keep_for_ms]
            )
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        self._reachable()

    async def latest(self, caller: str) -> int | None:
        self._skip_while_failing()
        try:
            held = await self.client.get(REDIS_KEY_PREFIX + caller)
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        self._reachable()
        return int(held, 16) if held is not None else None

    async def close(self) -> None:
        await self.client.aclose()

    def _skip_while_failing(self) -> None:
        if time.monotonic() < self._skip_until:
            raise MarksUnavailable("Redis failed a moment ago: not asked again yet")

    def _unavailable(self, exc: RedisError) -> MarksUnavailable:
        if isinstance(exc, MaxConnectionsError):  # busy, not failing: this mark only
            return MarksUnavailable(str(exc))
        self._skip_until = time.monotonic() + REDIS_RETRY_AFTER
        if not self._failing:  # once per outage, not once per request
            self._failing = True
            logger.warning(
                "read-your-writes marks cannot be kept in Redis (%s: %s): callers' reads go to "
                "the primary until it answers again",
                type(exc).__name__,
                exc,
            )
        return MarksUnavailable(str(exc))

    def _reachable(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("read-your-writes marks are kept in Redis again")


def open_write_marks(redis_url: str | None, keep_for: float) -> WriteMarks:
    """Marks shared through Redis when `redis_url` is set, else this process's own."""
    if redis_url:
        return RedisWriteMarks(redis_url, keep_for)
    return LocalWriteMarks(keep_for)
