"""`RedisWriteMarks`: read-your-writes marks shared by every instance through Redis
(COURTYARD_REDIS_URL). What a mark is, and why it is kept as it is: `core.db.write_marks`,
which imports this module only when COURTYARD_REDIS_URL is set.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisError

from core.db.write_marks import (
    REDIS_KEY_PREFIX,
    REDIS_MAX_CONNECTIONS,
    REDIS_RETRY_AFTER,
    REDIS_TIMEOUT,
    MarksUnavailable,
    logger,
)

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
