"""The attempt counters on `memory://` (`limits`' async memory storage): a moving window per
key, keys whose window passed forgotten by the storage's sweep, and no race between
`clear()` (a successful sign-in) and that sweep."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage

from plugins.auth.windows import Windows, open_windows

NAMESPACE = "test"


def memory_storage(windows: Windows) -> MemoryStorage:
    assert isinstance(windows.storage, MemoryStorage)
    return windows.storage


async def sweep_finished(windows: Windows) -> None:
    """Until the storage's expiry sweep under way, if any, has ended (failed or not)."""
    sweep = memory_storage(windows).timer
    if sweep is not None:
        await asyncio.wait([sweep])


@asynccontextmanager
async def threads_busy() -> AsyncIterator[None]:
    """Until the block ends, work handed to a thread (`asyncio.to_thread`, as the storage's
    sweep does with each key) waits, as on a loaded server: the loop's default executor is
    one thread, kept busy."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(1))
    release = threading.Event()
    busy = loop.run_in_executor(None, release.wait)
    try:
        yield
    finally:
        release.set()
        await busy


async def test_a_key_is_refused_at_its_limit_until_its_oldest_attempt_leaves_the_window() -> None:
    windows, limit = open_windows("memory://"), parse("2/second")
    assert await windows.hit(limit, NAMESPACE, "a")
    assert await windows.hit(limit, NAMESPACE, "a")
    assert not await windows.hit(limit, NAMESPACE, "a")
    assert not await windows.test(limit, NAMESPACE, "a")
    assert await windows.hit(limit, NAMESPACE, "b"), "another key has its own count"
    assert await windows.retry_after(limit, NAMESPACE, "a") == 1
    await asyncio.sleep(1.05)
    assert await windows.test(limit, NAMESPACE, "a")
    assert await windows.hit(limit, NAMESPACE, "a")


async def test_clear_forgets_a_key_and_other_limits_count_apart() -> None:
    windows = open_windows("memory://")
    per_second, per_minute = parse("1/second"), parse("1/minute")
    assert await windows.hit(per_second, NAMESPACE, "a")
    assert await windows.hit(per_minute, NAMESPACE, "a"), "a different limit counts apart"
    assert not await windows.hit(per_second, NAMESPACE, "a")
    await windows.clear(per_second, NAMESPACE, "a")
    assert await windows.retry_after(per_second, NAMESPACE, "a") == 0
    assert await windows.hit(per_second, NAMESPACE, "a")
    assert not await windows.hit(per_minute, NAMESPACE, "a")


async def test_keys_whose_window_passed_are_forgotten() -> None:
    """A flood of one-off keys (random emails) does not grow memory beyond one window."""
    windows, limit = open_windows("memory://"), parse("5/second")
    for n in range(1000):
        assert await windows.hit(limit, NAMESPACE, f"key-{n}")
    await sweep_finished(windows)  # the sweep the first hit started, too early to drop any
    await asyncio.sleep(1.1)
    assert await windows.hit(limit, NAMESPACE, "late")  # starts a sweep
    await sweep_finished(windows)
    assert list(memory_storage(windows).events) == [limit.key_for(NAMESPACE, "late")]


async def test_a_clear_during_the_sweep_does_not_let_the_key_over_its_limit() -> None:
    """Stops a limiter bypass: attempts counted just after a success cleared the account
    stay counted when the sweep, in its thread on that key meanwhile, comes back (it cut
    the key's new attempts to the old ones' count: 5 attempts passed a limit of 3)."""
    windows, limit = open_windows("memory://"), parse("3/minute")
    async with threads_busy():
        assert await windows.hit(limit, NAMESPACE, "a")  # starts a sweep
        await asyncio.sleep(0)  # the sweep is waiting for a thread, on "a"
        await windows.clear(limit, NAMESPACE, "a")
        assert [await windows.hit(limit, NAMESPACE, "a") for _ in range(3)] == [True] * 3
    await sweep_finished(windows)

    assert not await windows.hit(limit, NAMESPACE, "a")


async def test_a_clear_during_the_sweep_does_not_break_the_sweep(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stops an error in the log at every success during a sweep, and keys left unswept: a
    key cleared before the sweep reached it made the sweep fail with a KeyError."""
    windows, limit = open_windows("memory://"), parse("3/minute")
    assert await windows.hit(limit, NAMESPACE, "a")  # starts a sweep
    assert await windows.hit(limit, NAMESPACE, "b")
    async with threads_busy():
        await asyncio.sleep(0)  # the sweep is waiting for a thread, on "a"
        await windows.clear(limit, NAMESPACE, "b")
    await sweep_finished(windows)
    assert await windows.hit(limit, NAMESPACE, "c")  # starts the next sweep
    gc.collect()  # asyncio logs a failed task's error when the task is collected

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
