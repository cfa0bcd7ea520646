"""Which sessions were revoked recently, known to every instance within a few seconds.

Access tokens are checked without a database query: each instance keeps the ids of the
sessions revoked during the last access-token lifetime (older revocations cannot matter:
every token of such a session has expired) and reloads them from the database once the
copy is older than `revocation_check_interval`. So a logout, a password change or a
deactivation on one instance reaches the others within that interval; on the instance
that made the change it applies at once.

The reload happens on the request that finds the copy too old (one indexed query per
interval, shared by concurrent requests). If it fails, that request fails with the
database error (a 503 when the database is down): an instance never keeps trusting a copy
older than the interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

Loader = Callable[[datetime], Awaitable[Iterable[str]]]


class RevokedSessions:
    def __init__(self, loader: Loader, *, interval: float, horizon: float) -> None:
        """`loader(since)` returns the ids of sessions revoked since then; `horizon` is how
        far back a revocation still matters (the access-token lifetime), in seconds."""
        self._loader = loader
        self._interval = interval
        self._horizon = horizon
        self._revoked: frozenset[str] = frozenset()
        self._local: set[str] = set()
        self._loaded_at = float("-inf")
        self._reloading: asyncio.Future[None] | None = None

    async def is_revoked(self, session_id: str) -> bool:
        if time.monotonic() - self._loaded_at >= self._interval:
            await self._reload()
        return session_id in self._revoked or session_id in self._local

    def add(self, session_ids: Iterable[str]) -> None:
        """Sessions this instance just revoked: refused here at once, not at the next reload."""
        self._local.update(session_ids)

    async def _reload(self) -> None:
        """Join the reload in progress, or start one. Every request that needs it shares
        one query and its outcome, so with the database down each waits for one attempt
        (then fails) instead of queueing behind the others' attempts."""
        if self._reloading is None:
            task = asyncio.ensure_future(self._load())
            task.add_done_callback(self._finished)
            self._reloading = task
        await asyncio.shield(self._reloading)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._reloading = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters raise it; no "never retrieved" noise

    async def _load(self) -> None:
        started = time.monotonic()
        known = set(self._local)  # committed before the query starts, so it will see them
        # A little more than the horizon, so a token issued just before its session was
        # revoked is covered for its whole life, clocks allowing.
        since = datetime.now(UTC) - timedelta(seconds=self._horizon + self._interval + 60)
        self._revoked = frozenset(await self._loader(since))
        self._local -= known
        self._loaded_at = started
