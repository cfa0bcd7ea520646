"""Connections are handed out in the order they were asked for: under load (more requests
in flight than connections) a request that just arrived never takes a returned
connection from one that was waiting, which SQLAlchemy's asyncio pool lets it do (and
then some requests wait for seconds, or get a 503, while the pool turns over quickly)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import Empty

from core.db.engine import Database
from core.db.pool import FairQueue
from core.settings import CoreSettings
from tests.support.databases import backends

SAFETY_NET = 30  # seconds; a hung test fails instead of hanging, no timing is asserted


async def get(queue: FairQueue[str], wait_seconds: float | None = SAFETY_NET) -> str:
    return await greenlet_spawn(queue.get, True, wait_seconds)


async def driver_of(connection: AsyncConnection) -> Any:
    """The driver's own connection under `connection` (to tell pooled connections apart)."""
    return (await connection.get_raw_connection()).driver_connection


def queues_made(monkeypatch: pytest.MonkeyPatch) -> list[FairQueue[Any]]:
    """Every `FairQueue` made from now on, such as a new pool's (which the pool keeps
    in a private attribute)."""
    made: list[FairQueue[Any]] = []
    init = FairQueue.__init__

    def recorded(queue: FairQueue[Any], *args: Any, **kwargs: Any) -> None:
        init(queue, *args, **kwargs)
        made.append(queue)

    monkeypatch.setattr(FairQueue, "__init__", recorded)
    return made


async def waiting(queue: FairQueue[Any], count: int) -> None:
    while True:
        if sum(not waiter.done() for waiter in queue._waiters) >= count:
            return
        await asyncio.sleep(0)


async def in_line(queue: FairQueue[str], count: int) -> list[asyncio.Task[str]]:
    """`count` gets that wait on the empty `queue`, in this order."""
    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(get(queue)))
        await waiting(queue, n + 1)
    return tasks


async def test_a_returned_item_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    queue: FairQueue[str] = FairQueue(2)
    first, second = await in_line(queue, 2)

    queue.put("a", False)
    newcomer = asyncio.create_task(get(queue))  # arrives before `first` has run again
    queue.put("b", False)
    queue.put("c", False)

    handed = await asyncio.wait_for(asyncio.gather(first, second, newcomer), SAFETY_NET)
    assert list(handed) == ["a", "b", "c"]
    assert queue.empty()


async def test_an_idle_item_is_taken_at_once_and_an_empty_queue_times_out() -> None:
    queue: FairQueue[str] = FairQueue(2)
    queue.put("idle", False)
    assert await get(queue) == "idle"
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, False)
    with pytest.raises(Empty):
        await get(queue, wait_seconds=0.01)
    queue.put("later", False)  # the timed-out waiter is skipped, the item is kept
    assert await get(queue) == "later"


async def test_an_item_handed_to_a_waiter_that_gave_up_goes_to_the_next() -> None:
    queue: FairQueue[str] = FairQueue(2)
    quitter, patient = await in_line(queue, 2)

    queue.put("x", False)  # promised to `quitter`...
    quitter.cancel()  # ...which is cancelled before it could take it
    with pytest.raises(asyncio.CancelledError):
        await quitter

    assert await asyncio.wait_for(patient, SAFETY_NET) == "x"


@pytest.mark.parametrize(
    "database_url", [b for b in backends() if b == "postgresql"], indirect=True
)
async def test_pooled_connections_go_to_requests_in_arrival_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = queues_made(monkeypatch)
    settings = CoreSettings(env="test", database_url=database_url, db_pool_size=1)
    database = Database(settings.model_copy(update={"db_max_overflow": 0}))
    order: list[str] = []
    engine = database.primary_read_engine
    try:

        async def waiter(name: str) -> None:
            async with engine.connect():
                order.append(name)

        async def holder() -> None:
            async with engine.connect():
                order.append("holder")
                holds.set()
                await release.wait()
            # Returned; asking again at once, before any waiter has had a turn to run.
            async with engine.connect():
                order.append("holder again")

        holds, release = asyncio.Event(), asyncio.Event()
        holding = asyncio.create_task(holder())
        await asyncio.wait_for(holds.wait(), SAFETY_NET)
        [queue] = made  # the pool's
        waiters = [asyncio.create_task(waiter(f"waiter{n}")) for n in range(2)]
        await waiting(queue, 2)

        release.set()
        await asyncio.wait_for(asyncio.gather(holding, *waiters), SAFETY_NET)

        assert order == ["holder", "waiter0", "waiter1", "holder again"]
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    "database_url", [b for b in backends() if b == "postgresql"], indirect=True
)
async def test_a_connection_beyond_the_pool_size_is_closed_when_given_back(
    database_url: str,
) -> None:
    settings = CoreSettings(env="test", database_url=database_url, db_pool_size=1)
    database = Database(settings.model_copy(update={"db_max_overflow": 1}))
    engine = database.primary_read_engine
    pool = engine.sync_engine.pool
    try:
        async with engine.connect() as first, engine.connect() as second:
            first_driver = await driver_of(first)
            second_driver = await driver_of(second)
            assert pool.checkedout() == 2  # type: ignore[attr-defined]
        # `second` went back into the pool; `first` found it full and was closed.
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # type: ignore[attr-defined]
        assert not second_driver.is_closed()
        assert first_driver.is_closed()
        async with engine.connect() as again:
            assert await driver_of(again) is second_driver
            assert (await again.execute(sa.select(1))).scalar() == 1
    finally:
        await database.dispose()
