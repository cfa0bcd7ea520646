"""The per-instance set of revoked sessions, on its own: reloads are shared and bounded."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from plugins.auth.revocation import RevokedSessions


class DatabaseDown(Exception):
    pass


async def test_concurrent_requests_share_one_failing_reload() -> None:
    """Stops a pile-up during a database outage: requests that all find the set too old
    wait for one reload attempt together and all fail with its error, instead of each
    retrying in turn behind the others (the hundredth would wait a hundred timeouts)."""
    calls: list[datetime] = []
    gate = asyncio.Event()

    async def loader(since: datetime) -> list[str]:
        calls.append(since)
        await gate.wait()
        raise DatabaseDown

    revoked = RevokedSessions(loader, interval=5, horizon=900)
    checks = [asyncio.ensure_future(revoked.is_revoked(f"ses_{i}")) for i in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*checks, return_exceptions=True)

    assert len(calls) == 1
    assert all(isinstance(r, DatabaseDown) for r in results)
    with pytest.raises(DatabaseDown):  # the next request tries again, and fails on its own
        await revoked.is_revoked("ses_x")
    assert len(calls) == 2


async def test_a_reload_serves_until_the_interval_passes() -> None:
    """The set is read once per interval, however many requests check it."""
    calls = 0

    async def loader(since: datetime) -> list[str]:
        nonlocal calls
        calls += 1
        return ["ses_revoked"]

    revoked = RevokedSessions(loader, interval=60, horizon=900)
    answers = [await revoked.is_revoked(s) for s in ("ses_revoked", "ses_live", "ses_live")]

    assert answers == [True, False, False]
    assert calls == 1
    revoked.add(["ses_live"])
    assert await revoked.is_revoked("ses_live") is True  # this instance's own revocation
