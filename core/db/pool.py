"""A connection pool that hands connections out first come, first served.

SQLAlchemy's asyncio pool keeps idle connections in an `asyncio.Queue`, and its `get()`
takes an idle connection at once if there is one. When every connection is in use, a
returned connection is put in the queue and the longest waiter is only woken; before it
runs, a request that just arrived finds the connection there and takes it, and the waiter,
finding the queue empty again, waits anew at the back of the line. Under sustained load
(more requests in flight than connections) some requests are passed over again and again:
seconds of waiting, and a 503 once `COURTYARD_DB_POOL_TIMEOUT` runs out, while the pool is
turning over connections every millisecond.

`FairQueue` hands a returned connection straight to the longest waiter, so nobody overtakes
anybody: a request waits for as many returns as there were requests waiting before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty

T = TypeVar("T")


class FairQueue(AsyncAdaptedQueue[T]):
    """`AsyncAdaptedQueue` with a direct hand-off to waiters, in the order they came. An
    item is only ever queued when nobody waits, so a newcomer never takes one a waiter was
    promised."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[T]] = deque()

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # not given up (timed out, cancelled)
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        if any(not waiter.done() for waiter in self._waiters):
            self.put_nowait(item)
            return
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        try:
            return self.get_nowait()  # an idle item, which no waiter can be waiting for
        except Empty:
            if not block:
                raise
        return await_(self._wait(seconds=timeout))

    async def _wait(self, *, seconds: float | None) -> T:
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                # Handed an item just as the wait ended: pass it on rather than lose it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
            if isinstance(error, TimeoutError):
                raise Empty() from None
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool, with connections handed out in the order asked for."""

    _queue_class: Any = FairQueue

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checkouts_under_way = 0

    def connect(self) -> PoolProxiedConnection:
        """A connection; meanwhile counted in `checkouts_under_way` (read by `/metrics`):
        seen from the event loop, those are the callers waiting for a free connection or
        for a new one to open."""
        self.checkouts_under_way += 1
        try:
            return super().connect()
        finally:
            self.checkouts_under_way -= 1
