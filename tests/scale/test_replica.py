"""Reads on the streaming replica, seen from clients of different instances.

- Read-your-writes across instances: with the replica's replay paused, a caller who
  renamed themself on one instance reads the new name on another (the caller's write mark
  is in the shared Redis, so that instance knows to wait for the replica, then read the
  primary). A rename made behind the app's back is still the old name on every instance:
  the reads do come from the paused replica, which is what makes the first check mean
  something.
- The replica stopped: replica-routed reads still answer 200 (from the primary), every
  instance stays ready (`/health/ready` 200, `database.replica` reported degraded) and in
  HAProxy's rotation; once the replica is back, the instances use it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.scale.clients import ME, READY, USERS, Account, sign_up, signed_in
from tests.scale.instances import Instance
from tests.scale.topology import Topology
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.scale

BACK_WITHIN = 15.0  # seconds for every instance to use the restarted replica again


def caught_up(primary: PgCluster, replica: PgCluster) -> bool:
    """True when the replica has replayed everything the primary has written so far."""
    written = primary.sql("SELECT pg_current_wal_insert_lsn()")
    return replica.sql(f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn") == "t"


async def replica_caught_up(scale: Topology) -> None:
    """Until the replica has replayed what the primary has written. (Signing up is
    anonymous: no caller, so no write mark, and a read right after it may come from a
    replica that has not replayed it yet; the private primary commits without waiting for
    its WAL to be flushed, so that takes up to wal_writer_delay, 200 ms.)"""
    deadline = time.monotonic() + 30
    while not caught_up(scale.primary, scale.replica):
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def replay_paused(scale: Topology) -> AsyncIterator[None]:
    """The replica caught up, then replaying nothing more (it still receives the WAL)."""
    await replica_caught_up(scale)
    scale.replica.sql("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        scale.replica.sql("SELECT pg_wal_replay_resume()")


async def name_on(instance: Instance, account: Account) -> str:
    """The caller's own name read with `GET /users/{id}`: a read the app may send to the
    replica."""
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        response = await client.get(f"{USERS}/{account.user_id}", headers=account.headers)
    assert response.status_code == 200, (instance.name, response.text)
    name: str = response.json()["name"]
    return name


async def readiness(instance: Instance) -> httpx.Response:
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        return await client.get(READY)


async def test_a_callers_write_on_one_instance_is_read_back_on_the_others(
    scale: Topology,
) -> None:
    writer, *readers = scale.instances
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        ann = await signed_in(client, await sign_up(client, "ann", name="Ann"))
    async with replay_paused(scale):
        # Behind the app's back: no caller has a mark for it, reads may lag.
        scale.primary.sql(f"UPDATE \"user\" SET name = 'Ann Elsewhere' WHERE id = '{ann.user_id}'")
        for instance in scale.instances:
            assert await name_on(instance, ann) == "Ann", "this read did not use the replica"

        async with httpx.AsyncClient(base_url=writer.url, timeout=10) as client:
            renamed = await client.patch(ME, json={"name": "Ann Renamed"}, headers=ann.headers)
        assert renamed.status_code == 200, renamed.text
        for instance in readers:
            assert await name_on(instance, ann) == "Ann Renamed", instance.name
        assert scale.replica.sql(f"SELECT name FROM \"user\" WHERE id = '{ann.user_id}'") == "Ann"


async def test_with_the_replica_stopped_reads_answer_and_every_instance_stays_ready(
    scale: Topology,
) -> None:
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        bob = await signed_in(client, await sign_up(client, "bob", name="Bob"))
    await replica_caught_up(scale)
    for instance in scale.instances:
        assert await name_on(instance, bob) == "Bob"  # each has pooled replica connections

    scale.replica.stop()
    try:
        for instance in scale.instances:
            assert await name_on(instance, bob) == "Bob"
            ready = await readiness(instance)
            assert ready.status_code == 200, (instance.name, ready.text)
            checks = ready.json()["checks"]
            assert checks["database"] == "ok", checks
            assert checks["database.replica"].startswith("degraded: unreachable"), checks
            assert ready.json()["status"] == "degraded", ready.text
        async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
            for _ in range(2 * len(scale.instances)):  # round robin: each instance twice
                response = await client.get(f"{USERS}/{bob.user_id}", headers=bob.headers)
                assert response.status_code == 200, response.text
        assert set(scale.balancer.states().values()) == {"UP"}, scale.balancer.states()
    finally:
        scale.replica.start(port=scale.replica.port)

    deadline = time.monotonic() + BACK_WITHIN
    for instance in scale.instances:
        while (await readiness(instance)).json()["checks"]["database.replica"] != "ok":
            assert time.monotonic() < deadline, f"{instance.name} did not use the replica again"
            await asyncio.sleep(0.2)
