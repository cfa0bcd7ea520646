"""Moving-window counters for the sign-in and mail throttles: in this process, or shared by
every instance through Redis.

`memory://` is this module's own: a deque of attempt times per key, checked and counted in
one synchronous step (nothing else runs on the event loop meanwhile), forgotten once its
window has passed. The `limits` library's in-memory storage, used before, handed every
expiry sweep to a thread (a thread hop per sign-in) and raced `clear()` with that sweep.
`redis[s]://` goes through `limits`' Redis storage and its atomic Lua scripts.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Protocol

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

SWEEP_EVERY = 60.0  # seconds between sweeps of keys whose window has passed


class Windows(Protocol):
    """Attempts per key within a moving window. Raises `limits.errors.StorageError` when a
    shared storage cannot be reached."""

    async def hit(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        """Count an attempt, unless the key is at its limit; True if it was counted."""
        ...

    async def test(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        """True if an attempt would be counted now (the key is under its limit); counts
        nothing."""
        ...

    async def retry_after(self, limit: RateLimitItem, namespace: str, key: str) -> int:
        """Whole seconds until the key may be counted again."""
        ...

    async def clear(self, limit: RateLimitItem, namespace: str, key: str) -> None:
        """Forget the key's attempts."""
        ...

    async def check(self) -> bool:
        """True if the storage can be reached."""
        ...

    async def close(self) -> None:
        """Release the storage's connections (at shutdown)."""
        ...


class MemoryWindows:
    """One process's counters. Memory is bounded by the keys attempted within a window."""

    def __init__(self, *, sweep_every: float = SWEEP_EVERY) -> None:
        self._attempts: dict[str, tuple[float, deque[float]]] = {}
        self._sweep_every = sweep_every
        self._next_sweep = time.monotonic() + sweep_every

    def __len__(self) -> int:
        """The keys held (attempted within their window, or not swept yet)."""
        return len(self._attempts)

    async def hit(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        name = _name(limit, namespace, key)
        found = self._attempts.get(name)
        if found is None:
            found = self._attempts[name] = (limit.get_expiry(), deque())
        window, times = found
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limit.amount:
            return False
        times.append(now)
        return True

    async def test(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        found = self._attempts.get(_name(limit, namespace, key))
        if found is None:
            return limit.amount > 0
        window, times = found
        since = time.monotonic() - window
        return sum(1 for at in times if at > since) < limit.amount

    async def retry_after(self, limit: RateLimitItem, namespace: str, key: str) -> int:
        found = self._attempts.get(_name(limit, namespace, key))
        if found is None or not found[1]:
            return 0
        window, times = found
        return max(0, math.ceil(times[0] + window - time.monotonic()))

    async def clear(self, limit: RateLimitItem, namespace: str, key: str) -> None:
        self._attempts.pop(_name(limit, namespace, key), None)

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        self._attempts.clear()

    def _sweep(self, now: float) -> None:
        self._attempts = {
            name: (window, times)
            for name, (window, times) in self._attempts.items()
            if times and times[-1] > now - window
        }
        self._next_sweep = now + self._sweep_every


class SharedWindows:
    """Counters in a `limits` storage (Redis), shared by every instance of the app."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        return bool(await self._limiter.hit(limit, namespace, key))

    async def test(self, limit: RateLimitItem, namespace: str, key: str) -> bool:
        return bool(await self._limiter.test(limit, namespace, key))

    async def retry_after(self, limit: RateLimitItem, namespace: str, key: str) -> int:
        stats = await self._limiter.get_window_stats(limit, namespace, key)
        return max(0, math.ceil(stats.reset_time - time.time()))

    async def clear(self, limit: RateLimitItem, namespace: str, key: str) -> None:
        await self._limiter.clear(limit, namespace, key)

    async def check(self) -> bool:
        try:
            return bool(await self.storage.check())
        except StorageError:
            return False

    async def close(self) -> None:
        # `limits` offers no close; its Redis bridge holds the client (redis-py's `aclose`).
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()


def open_windows(url: str) -> Windows:
    """The counters for `memory://` or `redis[s]://…` (a Redis connects on first use)."""
    if url.startswith("memory://"):
        return MemoryWindows()
    storage = storage_from_string(f"async+{url}", wrap_exceptions=True, implementation="redispy")
    assert isinstance(storage, Storage)
    return SharedWindows(storage)


def _name(limit: RateLimitItem, namespace: str, key: str) -> str:
    return f"{namespace}/{limit.amount}/{limit.get_expiry()}/{key}"
