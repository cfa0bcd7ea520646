"""The in-process attempt counters (`memory://`): a moving window per key, and memory
bounded by the keys attempted within their window."""

from __future__ import annotations

import asyncio

from limits import parse

from plugins.auth.windows import MemoryWindows

NAMESPACE = "test"


async def test_a_key_is_refused_at_its_limit_until_its_oldest_attempt_leaves_the_window() -> None:
    windows, limit = MemoryWindows(), parse("2/second")
    assert await windows.hit(limit, NAMESPACE, "a")
    assert await windows.hit(limit, NAMESPACE, "a")
    assert not await windows.hit(limit, NAMESPACE, "a")
    assert await windows.hit(limit, NAMESPACE, "b"), "another key has its own count"
    assert await windows.retry_after(limit, NAMESPACE, "a") == 1
    await asyncio.sleep(1.05)
    assert await windows.hit(limit, NAMESPACE, "a")


async def test_clear_forgets_a_key_and_other_limits_count_apart() -> None:
    windows, per_second, per_minute = MemoryWindows(), parse("1/second"), parse("1/minute")
    assert await windows.hit(per_second, NAMESPACE, "a")
    assert await windows.hit(per_minute, NAMESPACE, "a"), "a different limit counts apart"
    assert not await windows.hit(per_second, NAMESPACE, "a")
    await windows.clear(per_second, NAMESPACE, "a")
    assert await windows.retry_after(per_second, NAMESPACE, "a") == 0
    assert await windows.hit(per_second, NAMESPACE, "a")
    assert not await windows.hit(per_minute, NAMESPACE, "a")


async def test_keys_whose_window_passed_are_forgotten() -> None:
    """A flood of one-off keys (random emails) does not grow memory beyond one window."""
    windows, limit = MemoryWindows(sweep_every=0.5), parse("5/second")
    for n in range(1000):
        assert await windows.hit(limit, NAMESPACE, f"key-{n}")
    assert len(windows) == 1000
    await asyncio.sleep(1.1)
    assert await windows.hit(limit, NAMESPACE, "late")
    assert len(windows) == 1
