"""Soak: a minute of steady mixed traffic over real HTTP against `courtyard serve`.

Every request must get its normal answer, and the server's memory must level off: a leak
per request (a session, a response, a log record kept somewhere) shows as RSS growing with
the request count. PostgreSQL only (see conftest).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.resilience.conftest import AUTH, ME, READY, UPLOADS, bearer, live, served, signed_up
from tests.support.served import server_output

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]

DURATION = 60.0  # seconds of traffic
WARM_UP = 10.0  # seconds before the baseline RSS is read: pools, caches and imports settle
RATE = 30  # requests per second, sent on a fixed schedule whatever the latency
USERS = 4
# 60 s at 30 req/s is 1,500 requests after warm-up. A leak of even 20 KiB per request
# would add ~30 MiB; a healthy process stays within a few MiB once warm (allocator arenas,
# the pool's statement caches, and one argon2 buffer per worker thread are all reached in
# the warm-up). The bound catches a per-request leak without tripping on allocator noise
# (measured on a 2-CPU machine: 155.4 → 156.2 MiB).
RSS_GROWTH_BOUND = 30 * 1024 * 1024

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def rss(pid: int) -> int:
    """Resident set size of `pid`, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class Account:
    """A signed-in user whose refresh token rotates; refreshes of it never overlap."""

    def __init__(self, tokens: dict[str, Any]) -> None:
        self.tokens = tokens
        self.refreshing = asyncio.Lock()

    async def me(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(ME, headers=bearer(self.tokens))

    async def uploads(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(UPLOADS, headers=bearer(self.tokens), params={"limit": 5})

    async def presign(self, client: httpx.AsyncClient) -> httpx.Response:
        grant = {"filename": "a.png", "content_type": "image/png", "size": 1024}
        return await client.post(UPLOADS, headers=bearer(self.tokens), json=grant)

    async def refresh(self, client: httpx.AsyncClient) -> httpx.Response:
        async with self.refreshing:
            response = await client.post(
                f"{AUTH}/refresh", json={"refresh_token": self.tokens["refresh_token"]}
            )
            if response.status_code == 200:
                self.tokens = {**self.tokens, **response.json()}
            return response


async def health(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(READY)


def mix(accounts: list[Account]) -> itertools.cycle[tuple[str, Send, int]]:
    """(kind, request, expected status), round robin over kinds and accounts."""
    kinds: list[tuple[str, Send, int]] = []
    for account in accounts:
        kinds += [
            ("me", account.me, 200),
            ("list", account.uploads, 200),
            ("me", account.me, 200),
            ("refresh", account.refresh, 200),
            ("presign", account.presign, 201),
            ("health", health, 200),
        ]
    return itertools.cycle(kinds)


async def test_a_minute_of_mixed_traffic_has_no_errors_and_no_memory_growth(
    pg_url: str, tmp_path: Path
) -> None:
    with served(pg_url, tmp_path) as (base_url, process, log):
        await live(base_url, process, log)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
            accounts = [
                Account(await signed_up(client, f"soak{n}@example.com")) for n in range(USERS)
            ]
            failures: list[str] = []
            seen: Counter[str] = Counter()

            async def one(kind: str, send: Send, expected: int) -> None:
                try:
                    response = await send(client)
                except httpx.HTTPError as exc:
                    failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                    return
                seen[kind] += 1
                if response.status_code != expected:
                    failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

            tasks: list[asyncio.Task[None]] = []
            start = time.monotonic()
            baseline = None
            for n, (kind, send, expected) in enumerate(mix(accounts)):
                due = start + n / RATE
                if due - start >= DURATION:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if baseline is None and due - start >= WARM_UP:
                    baseline = rss(process.pid)
                tasks.append(asyncio.create_task(one(kind, send, expected)))
                tasks = [t for t in tasks if not t.done()]
            await asyncio.gather(*tasks)
            final = rss(process.pid)
            sent = n

        assert process.poll() is None, server_output(log)
    assert failures == [], failures[:20]
    assert sum(seen.values()) == sent, seen
    assert baseline is not None
    growth = final - baseline
    assert growth <= RSS_GROWTH_BOUND, (
        f"RSS grew {growth / 2**20:.1f} MiB ({baseline / 2**20:.1f} → {final / 2**20:.1f} MiB)"
    )
