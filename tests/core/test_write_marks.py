"""Read-your-writes marks (`core.db.write_marks`): kept for a while, only ever moved
forward, bounded in memory; in Redis shared by every store on the same server.

Set COURTYARD_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/13) to run the Redis cases; they
remove the keys they made, and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from redis.asyncio import Redis

from core.db.redis_write_marks import RedisWriteMarks
from core.db.write_marks import (
    REDIS_KEY_PREFIX,
    LocalWriteMarks,
    MarksUnavailable,
    open_write_marks,
)
from tests.support.tcpproxy import TcpProxy

REDIS_URL = os.environ.get("COURTYARD_TEST_REDIS_URL")
CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def test_a_mark_is_kept_for_its_time_then_forgotten() -> None:
    marks = LocalWriteMarks(keep_for=0.2)
    await marks.remember("usr_a", 10)
    assert await marks.latest("usr_a") == 10
    assert await marks.latest("usr_b") is None
    await asyncio.sleep(0.3)
    assert await marks.latest("usr_a") is None


async def test_a_mark_only_moves_forward() -> None:
    marks = LocalWriteMarks(keep_for=60)
    await marks.remember("usr_a", 20)
    await marks.remember("usr_a", 10)  # an earlier commit, recorded late
    assert await marks.latest("usr_a") == 20
    await marks.remember("usr_a", 30)
    assert await marks.latest("usr_a") == 30


async def test_local_marks_keep_at_most_their_limit_dropping_the_oldest() -> None:
    marks = LocalWriteMarks(keep_for=60, limit=3)
    for position, caller in enumerate(["usr_a", "usr_b", "usr_c", "usr_d"]):
        await marks.remember(caller, position)
    assert await marks.latest("usr_a") is None
    assert [await marks.latest(c) for c in ["usr_b", "usr_c", "usr_d"]] == [1, 2, 3]


async def test_an_unreachable_redis_is_one_error_of_ours() -> None:
    marks = RedisWriteMarks(CLOSED_REDIS, keep_for=1)
    try:
        with pytest.raises(MarksUnavailable):
            await marks.latest("usr_a")
        with pytest.raises(MarksUnavailable):
            await marks.remember("usr_a", 1)
    finally:
        await marks.close()


async def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    """A Redis that hangs costs one command its timeout; the commands that follow, for a
    few seconds, answer at once that the mark is unknown, without connecting again (a
    request, and each of its reads, would otherwise wait for it)."""
    async with TcpProxy("127.0.0.1", 1) as silent:  # forwards nothing: partitioned at once
        await silent.partition()
        marks = RedisWriteMarks(f"redis://127.0.0.1:{silent.port}/0", keep_for=1)
        try:
            for _ in range(5):
                with pytest.raises(MarksUnavailable):
                    await marks.latest("usr_a")
            with pytest.raises(MarksUnavailable):
                await marks.remember("usr_a", 1)
        finally:
            await marks.close()
        assert silent.accepted == 1


def test_marks_live_in_redis_only_when_it_is_configured() -> None:
    assert isinstance(open_write_marks(None, 1), LocalWriteMarks)
    assert isinstance(open_write_marks(CLOSED_REDIS, 1), RedisWriteMarks)


if REDIS_URL:

    async def test_redis_marks_are_shared_move_forward_and_expire() -> None:
        caller = f"usr_{uuid.uuid4().hex}"
        key = REDIS_KEY_PREFIX + caller
        one, two = RedisWriteMarks(REDIS_URL, keep_for=15), RedisWriteMarks(REDIS_URL, keep_for=15)
        redis = Redis.from_url(REDIS_URL)
        try:
            assert await two.latest(caller) is None
            late = 2**63 + 5  # positions compare as numbers, past the 53 bits of a Lua number
            await one.remember(caller, late)
            assert await two.latest(caller) == late
            await two.remember(caller, 2**40)  # an earlier commit, recorded late
            assert await one.latest(caller) == late
            assert 14_000 < await redis.pttl(key) <= 15_000
        finally:
            await redis.delete(key)
            await redis.aclose()
            await one.close()
            await two.close()
