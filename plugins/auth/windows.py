"""Moving-window counters for the sign-in and mail throttles, in a `limits` storage: this
process's memory (`memory://`), or Redis (`redis[s]://`, atomic Lua scripts), shared by
every instance.

One race is mended here. `limits`' async memory storage (5.8) sweeps expired attempts in a
background task that takes each key's lock and hands the key's list to a thread, while its
`clear()` takes no lock and drops the key's list and lock. A `clear()` (every successful
sign-in) during a sweep either let the key over its limit (the sweep, back from its thread
on that key, cut the key's new list to the count of the old one: 5 attempts passed a limit
of 3) or, for a key the sweep had still to reach, made the sweep fail with a `KeyError`
(logged, and the keys after it left unswept). So `Windows.clear` cancels a sweep under way
before clearing; the next hit starts a new one, from the oldest key (a sweep takes about
0.1 ms a key, so with many keys and frequent sign-ins it rarely gets to the newest).
The two race tests in tests/plugins/auth/test_windows.py fail without that cancel.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string


class Windows:
    """Attempts per key within a moving window. Raises `limits.errors.StorageError` when a
    shared storage cannot be reached."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        """Count an attempt, unless the key is at its limit; True if it was counted."""
        return bool(await self._limiter.hit(limit, namespace, key))

    async def test(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        """True if an attempt would be counted now (the key is under its limit); counts
        nothing."""
        return bool(await self._limiter.test(limit, namespace, key))

    async def retry_after(self, limit: RateLimitItem, namespace: str, key: str) -> int:
        """Whole seconds until the key may be counted again."""
        stats = await self._limiter.get_window_stats(limit, namespace, key)
        if stats.remaining > 0:
            return 0
        return max(0, math.ceil(stats.reset_time - time.time()))

    async def clear(self, limit: RateLimitItem, namespace: str, key: str) -> None:
        """Forget the key's attempts."""
        if isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()  # the sweep under way (see the module docstring)
        await self._limiter.clear(limit, namespace, key)

    async def check(self) -> bool:
        """True if the storage can be reached."""
        try:
            return bool(await self.storage.check())
        except StorageError:
            return False

    async def close(self) -> None:
        """Release the storage's connections (at shutdown)."""
        # `limits` offers no close; its Redis bridge holds the client (redis-py's `aclose`).
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()


def counters_url(own: str | None, shared: str | None) -> str:
    """Where the counters live: auth's own storage (COURTYARD_AUTH__RATE_LIMIT_STORAGE)
    when given, else the Redis every instance shares (COURTYARD_REDIS_URL) when set, else
    this process's memory."""
    return own or shared or "memory://"


def open_windows(url: str) -> Windows:
    """The counters for `memory://` or `redis[s]://…` (a Redis connects on first use)."""
    options = {"implementation": "redispy"} if url.startswith("redis") else {}
    storage = storage_from_string(f"async+{url}", wrap_exceptions=True, **options)
    assert isinstance(storage, Storage)
    return Windows(storage)
