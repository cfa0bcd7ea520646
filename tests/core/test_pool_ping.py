"""Pooled connections the server closed while they sat idle (a restart, a proxy's idle
timeout, an operator's `pg_terminate_backend`): the app pings a connection that was idle
longer than `COURTYARD_DB_PING_IDLE_AFTER` before using it, and replaces it if it is dead.
A connection back in the pool only a moment ago is used without that extra round trip.

PostgreSQL only: an SQLite connection is a file handle no server can close.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.databases import backends, kill_app_connections
from tests.support.problems import assert_problem

ITEMS = "/api/v1/alpha/items"

pytestmark = pytest.mark.parametrize(
    "database_url", [b for b in backends() if b == "postgresql"], indirect=True
)


async def create_item(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(ITEMS, json={"name": name})


async def test_a_connection_closed_while_idle_is_replaced_before_use(
    main_plugins: None, app_client, database_url: str
) -> None:
    async with app_client(enabled_plugins="alpha", db_ping_idle_after=0.05) as client:
        assert (await create_item(client, "before")).status_code == 201
        assert await kill_app_connections(database_url) >= 1
        await asyncio.sleep(0.2)  # idle past the threshold
        answer = await create_item(client, "after")
        assert answer.status_code == 201, answer.text
        listed = await client.get(ITEMS)
        assert {item["name"] for item in listed.json()["items"]} == {"before", "after"}


async def test_without_the_idle_ping_one_request_fails_cleanly_and_the_pool_recovers(
    main_plugins: None, app_client, database_url: str
) -> None:
    """What the ping saves: the dead connection's first user would get a 503 (never a
    500, never a hang), and that failure makes the pool drop every old connection."""
    async with app_client(enabled_plugins="alpha", db_ping_idle_after=3600) as client:
        assert (await create_item(client, "before")).status_code == 201
        assert await kill_app_connections(database_url) >= 1
        await asyncio.sleep(0.2)
        failed = await create_item(client, "lost")
        assert_problem(failed, 503, "core.database_unavailable")
        assert failed.headers["retry-after"]
        answer = await create_item(client, "after")
        assert answer.status_code == 201, answer.text
        listed = await client.get(ITEMS)
        assert {item["name"] for item in listed.json()["items"]} == {"before", "after"}
