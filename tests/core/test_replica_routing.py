"""Reads on a real streaming replica: a private primary and a hot standby of it
(tests/support/pg_cluster.py), one pair for the module, the app talking to both over TCP.

What a reader sees tells which server answered: with the replica's replay paused, a change
made on the primary (through the app, or behind its back) is there on the primary only.

- a caller who changed something reads the change back, on this instance and, with the
  marks in Redis, on another; a read that may lag (another caller's) still comes from the
  replica; with Redis silent, or the replica gone silent during the wait for it, the
  caller's reads come from the primary without waiting long;
- a replica that is stopped, or lags past COURTYARD_DB_REPLICA_MAX_LAG, is skipped (reads
  go to the primary, `/health/ready` stays 200 and says `database.replica` is degraded),
  and used again once it is back; the app's full replica pool is not the replica down;
- without the primary the instance is not ready (503).

The case with marks shared in Redis exists only when COURTYARD_TEST_REDIS_URL is set (as
in tests/plugins/auth/test_throttling.py); it removes the marks it made, and nothing else.
A silent Redis (or replica) is a TCP proxy that accepts connections and forwards nothing
(tests/support/tcpproxy.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from redis.asyncio import Redis
from sqlmodel import func, select

from core.app import create_app
from core.db import AppSession, Database
from core.db.replica import CHECK_INTERVAL, RETRY_DOWN_AFTER
from core.db.write_marks import REDIS_KEY_PREFIX
from tests.conftest import make_settings, migrate, running
from tests.support.databases import PG_ENV
from tests.support.pg_cluster import (
    SUPERUSER,
    PgCluster,
    PostgresNotInstalled,
    pg_cluster,
    streaming_replica,
)
from tests.support.problems import assert_problem
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres

PLUGINS = "user,auth,mail"
USERS = "/api/v1/users"
READY = "/health/ready"
PASSWORD = "correct horse battery staple"
DATABASE = "courtyard"
REDIS_URL = os.environ.get("COURTYARD_TEST_REDIS_URL")
# Small timeouts keep the outages short; no bound asserted depends on them.
FAST_FAILURE = {"db_connect_timeout": 2, "db_pool_timeout": 2, "ready_timeout": 2}
DEGRADED_BY_LAG = re.compile(r"degraded: \d+(\.\d)? s behind, reads go to the primary")
UNREACHABLE = re.compile(r"degraded: unreachable \(\w+\), reads go to the primary")


@dataclass
class Pair:
    primary: PgCluster
    replica: PgCluster

    @property
    def primary_url(self) -> str:
        return _url(self.primary)

    @property
    def replica_url(self) -> str:
        return _url(self.replica)


@dataclass
class Caller:
    id: str
    headers: dict[str, str]


def _url(cluster: PgCluster) -> str:
    return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{cluster.port}/{DATABASE}"


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A primary with the built-ins' tables and a streaming replica of it, removed after
    the module. Without the server programs this fails: PostgreSQL is under test."""
    try:
        with pg_cluster() as primary, streaming_replica(primary) as replica:
            primary.sql(f"CREATE DATABASE {DATABASE}")
            asyncio.run(migrate(make_settings(_url(primary), enabled_plugins=PLUGINS)))
            yield Pair(primary, replica)
    except PostgresNotInstalled as missing:
        pytest.fail(f"{PG_ENV} is set but {missing}")


# -- the servers, behind the app's back ------------------------------------------------------


async def fetchval(cluster: PgCluster, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user=SUPERUSER, database=DATABASE, timeout=5
    )
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:g}s")
        await asyncio.sleep(0.1)


async def caught_up(pair: Pair) -> None:
    """Until the replica has replayed everything the primary has committed (the end of
    its WAL: the test server commits without waiting for the WAL to be written)."""

    async def replayed() -> bool:
        written = await fetchval(pair.primary, "SELECT pg_current_wal_insert_lsn()")
        return bool(await fetchval(pair.replica, "SELECT pg_last_wal_replay_lsn()") >= written)

    await eventually(replayed, 30, "the replica catching up")


@asynccontextmanager
async def replay_paused(pair: Pair) -> AsyncIterator[None]:
    """The replica caught up, then replaying nothing more (it still receives the WAL)."""
    await caught_up(pair)
    await fetchval(pair.replica, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        await fetchval(pair.replica, "SELECT pg_wal_replay_resume()")


async def rename_on_the_primary(pair: Pair, user_id: str, name: str) -> None:
    await fetchval(pair.primary, 'UPDATE "user" SET name = $1 WHERE id = $2', name, user_id)


# -- the app ---------------------------------------------------------------------------------


@asynccontextmanager
async def instance(pair: Pair, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app instance reading from the replica; its failed-login counters stay in memory
    (`COURTYARD_AUTH__RATE_LIMIT_STORAGE` wins over `COURTYARD_REDIS_URL`). The app is
    `client.app`."""
    settings = make_settings(
        pair.primary_url,
        enabled_plugins=PLUGINS,
        **{"read_database_url": pair.replica_url, **FAST_FAILURE, **overrides},
    )
    app = create_app(settings, plugin_settings={"auth": {"rate_limit_storage": "memory://"}})
    async with running(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def signed_up(client: httpx.AsyncClient, name: str) -> Caller:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Caller(body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"})


async def name_seen(client: httpx.AsyncClient, reader: Caller, user_id: str) -> str:
    """The user's name as `reader` reads it (a read the app may send to the replica)."""
    response = await client.get(f"{USERS}/{user_id}", headers=reader.headers)
    assert response.status_code == 200, response.text
    name: str = response.json()["name"]
    return name


async def replica_check(client: httpx.AsyncClient) -> str:
    """The `database.replica` outcome of `/health/ready`, which must answer 200."""
    response = await client.get(READY)
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok", response.text
    outcome: str = response.json()["checks"]["database.replica"]
    return outcome


async def replica_ok(client: httpx.AsyncClient) -> bool:
    return await replica_check(client) == "ok"


async def in_recovery(session: AppSession) -> bool:
    """True on the replica (a standby), False on the primary."""
    return bool((await session.exec(select(func.pg_is_in_recovery()))).one())


# -- read-your-writes ------------------------------------------------------------------------

if REDIS_URL:

    async def test_a_caller_reads_their_own_write_on_every_instance_while_others_may_lag(
        pair: Pair,
    ) -> None:
        shared = {"redis_url": REDIS_URL}
        redis = Redis.from_url(REDIS_URL, decode_responses=True)
        async with instance(pair, **shared) as one, instance(pair, **shared) as two:
            ann = await signed_up(one, "Ann")
            admin = await signed_up(one, "Bob")
            await fetchval(
                pair.primary, "UPDATE \"user\" SET role = 'admin' WHERE id = $1", admin.id
            )
            try:
                # Signing up wrote for Ann: her mark is there before she acts with a token.
                assert await redis.get(REDIS_KEY_PREFIX + ann.id) is not None
                # Both instances have found the replica fresh: until then every read goes
                # to the primary (a slow first check on a loaded machine failed this test).
                await caught_up(pair)
                await eventually(lambda: replica_ok(one), 5, "instance one finding the replica")
                await eventually(lambda: replica_ok(two), 5, "instance two finding the replica")
                async with replay_paused(pair):
                    renamed = await one.patch(
                        f"{USERS}/me", json={"name": "Ann Renamed"}, headers=ann.headers
                    )
                    assert renamed.status_code == 200, renamed.text
                    # The mark is shared, and kept a little longer than the max lag (10 s).
                    assert await redis.get(REDIS_KEY_PREFIX + ann.id) is not None
                    assert 10_000 < await redis.pttl(REDIS_KEY_PREFIX + ann.id) <= 15_000

                    assert await name_seen(one, ann, ann.id) == "Ann Renamed"
                    assert await name_seen(two, ann, ann.id) == "Ann Renamed"
                    # Another caller's read may lag: the replica, still without the
                    # rename, answers it.
                    assert await name_seen(one, admin, ann.id) == "Ann"
                    assert await name_seen(two, admin, ann.id) == "Ann"

                async def replayed() -> bool:
                    return await name_seen(two, admin, ann.id) == "Ann Renamed"

                await eventually(replayed, 10, "the replica showing the rename")
            finally:
                await redis.delete(REDIS_KEY_PREFIX + ann.id, REDIS_KEY_PREFIX + admin.id)
                await redis.aclose()

    async def test_a_new_user_reads_their_own_account_at_once_on_every_instance(
        pair: Pair,
    ) -> None:
        """Stops: a sign-up answered 201 whose user then gets 404 for their own account from
        a replica that has not replayed it (the sign-up came without a principal, so its
        write was nobody's)."""
        shared = {"redis_url": REDIS_URL}
        redis = Redis.from_url(REDIS_URL, decode_responses=True)
        async with (
            instance(pair, **shared) as one,
            instance(pair, **shared) as two,
            replay_paused(pair),
        ):
            cat = await signed_up(one, "Cat")
            try:
                assert await name_seen(one, cat, cat.id) == "Cat"
                assert await name_seen(two, cat, cat.id) == "Cat"
                # The replica really lacks her: the reads above came from the primary.
                query = 'SELECT count(*) FROM "user" WHERE id = $1'
                assert await fetchval(pair.replica, query, cat.id) == 0
            finally:
                await redis.delete(REDIS_KEY_PREFIX + cat.id)
                await redis.aclose()


async def test_without_redis_a_callers_mark_stays_on_its_instance(pair: Pair) -> None:
    """The documented limit of COURTYARD_REDIS_URL unset: the instance that took the write
    knows of it, another does not (and serves the replica's older state)."""
    async with instance(pair) as one, instance(pair) as two:
        ann = await signed_up(one, "Ann")
        async with replay_paused(pair):
            renamed = await one.patch(
                f"{USERS}/me", json={"name": "Ann Renamed"}, headers=ann.headers
            )
            assert renamed.status_code == 200, renamed.text
            assert await name_seen(one, ann, ann.id) == "Ann Renamed"
            assert await name_seen(two, ann, ann.id) == "Ann"


async def test_while_redis_does_not_answer_a_callers_reads_go_to_the_primary(
    pair: Pair,
) -> None:
    """A caller's mark cannot be known (Redis hangs): the caller's reads go to the primary,
    which has whatever the caller wrote. Redis is asked once, then left alone for a few
    seconds: the reads that follow do not wait for it."""
    async with TcpProxy("127.0.0.1", 1) as redis:  # forwards nothing: partitioned at once
        await redis.partition()
        async with instance(pair, redis_url=f"redis://127.0.0.1:{redis.port}/0") as client:
            ann = await signed_up(client, "Ann")
            async with replay_paused(pair):
                await rename_on_the_primary(pair, ann.id, "Renamed on the primary")
                for _ in range(5):
                    assert await name_seen(client, ann, ann.id) == "Renamed on the primary"
        assert redis.accepted == 1


async def test_a_callers_wait_for_the_replica_is_bounded_even_when_it_goes_silent(
    pair: Pair,
) -> None:
    """The replica stops answering (a network partition) just as a caller who wrote reads:
    the look at its replay position ends with COURTYARD_DB_REPLICA_WAIT, and the primary
    answers, far sooner than the driver's own command timeout (over 30 s)."""
    async with TcpProxy("127.0.0.1", pair.replica.port) as proxy:
        replica_url = f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{proxy.port}/{DATABASE}"
        # No ping before a pooled connection is used: the look itself meets the silence.
        async with instance(
            pair, read_database_url=replica_url, db_ping_idle_after=60, db_replica_wait=0.5
        ) as client:
            ann = await signed_up(client, "Ann")
            await caught_up(pair)
            assert await name_seen(client, ann, ann.id) == "Ann"  # a replica connection, pooled
            async with replay_paused(pair):
                renamed = await client.patch(
                    f"{USERS}/me", json={"name": "Ann Renamed"}, headers=ann.headers
                )
                assert renamed.status_code == 200, renamed.text
                await proxy.partition()
                async with asyncio.timeout(10):
                    assert await name_seen(client, ann, ann.id) == "Ann Renamed"
            await proxy.restore()


async def test_the_monitor_does_not_take_a_full_pool_for_a_replica_down(pair: Pair) -> None:
    """The monitor checks on connections of its own: requests holding every connection
    of the app's replica pool leave the replica usable. A read that then finds no
    connection free in time goes to the primary (and skips the replica a moment)."""
    async with instance(pair, db_pool_size=1, db_max_overflow=0) as client:
        database = client.app.state.database  # type: ignore[attr-defined]
        ann = await signed_up(client, "Ann")
        await eventually(lambda: replica_ok(client), 5, "the replica found fresh")
        async with database.read_sessions() as held:
            assert await in_recovery(held)  # the one connection of the replica pool, held
            for _ in range(2):  # checks run meanwhile, each would wait for the full pool
                await asyncio.sleep(CHECK_INTERVAL + FAST_FAILURE["db_pool_timeout"])
                assert await replica_check(client) == "ok"
            assert await name_seen(client, ann, ann.id) == "Ann"


# -- a replica that is down or behind --------------------------------------------------------


async def test_a_stopped_replica_is_skipped_then_used_again_once_back(pair: Pair) -> None:
    # Every checkout pings: a connection the stopped replica left in the pool is found
    # dead at once, and the read goes to the primary instead of failing.
    async with instance(pair, db_ping_idle_after=0) as client:
        ann = await signed_up(client, "Ann")
        assert await replica_check(client) == "ok"
        async with replay_paused(pair):
            await rename_on_the_primary(pair, ann.id, "Renamed on the primary")
            assert await name_seen(client, ann, ann.id) == "Ann"  # the replica answers

            pair.replica.stop()
            try:
                assert await name_seen(client, ann, ann.id) == "Renamed on the primary"
                assert UNREACHABLE.fullmatch(await replica_check(client))
                assert await name_seen(client, ann, ann.id) == "Renamed on the primary"
            finally:
                pair.replica.start(port=pair.replica.port)

        # Tried again after the back-off, and found back.
        await eventually(lambda: replica_ok(client), RETRY_DOWN_AFTER + 10, "the replica back")
        async with replay_paused(pair):
            await rename_on_the_primary(pair, ann.id, "Renamed again")
            assert await name_seen(client, ann, ann.id) == "Renamed on the primary"


async def test_a_read_refused_by_the_replica_goes_to_the_primary_in_the_same_call(
    pair: Pair,
) -> None:
    """No monitor here (a command's `Database`): the read that finds the replica gone is
    served by the primary, the replica is skipped from then on, and tried again after the
    back-off."""
    settings = make_settings(
        pair.primary_url, read_database_url=pair.replica_url, db_ping_idle_after=0
    )
    database = Database(settings)
    assert database.replica is not None
    try:
        async with database.read_sessions() as session:
            assert await in_recovery(session)  # a connection to the replica, now pooled

        pair.replica.stop()
        try:
            async with database.read_sessions() as session:
                assert not await in_recovery(session)
            assert database.replica.trouble == "unreachable (ConnectionRefusedError)"
            async with database.read_sessions() as session:
                assert not await in_recovery(session)
        finally:
            pair.replica.start(port=pair.replica.port)

        await asyncio.sleep(RETRY_DOWN_AFTER)
        async with database.read_sessions() as session:
            assert await in_recovery(session)
        assert database.replica.trouble is None
    finally:
        await database.dispose()


async def test_a_replica_lagging_past_the_max_lag_is_skipped(pair: Pair) -> None:
    async with instance(pair, db_replica_max_lag=1) as client:
        ann = await signed_up(client, "Ann")
        await caught_up(pair)
        await eventually(lambda: replica_ok(client), 5, "the replica found fresh")
        async with replay_paused(pair):
            await rename_on_the_primary(pair, ann.id, "Renamed on the primary")

            async def skipped() -> bool:
                return bool(DEGRADED_BY_LAG.fullmatch(await replica_check(client)))

            await eventually(skipped, 10, "the lagging replica reported")
            assert await name_seen(client, ann, ann.id) == "Renamed on the primary"

        await eventually(lambda: replica_ok(client), 10, "the replica caught up")


async def test_an_idle_primary_does_not_make_its_replica_look_behind(pair: Pair) -> None:
    """The primary writes nothing for longer than the max lag: the replica has replayed
    all of it, however old its last replayed transaction is."""
    async with instance(pair, db_replica_max_lag=1) as client:
        await caught_up(pair)
        for _ in range(3):
            await asyncio.sleep(1)
            assert await replica_check(client) == "ok"


# -- the primary ------------------------------------------------------------------------------


async def test_without_the_primary_the_instance_is_not_ready(pair: Pair) -> None:
    async with instance(pair) as client:
        assert await replica_check(client) == "ok"
        pair.primary.stop()
        try:
            response = await client.get(READY)
            checks = assert_problem(response, 503, "core.not_ready")["checks"]
            assert checks["database"] != "ok", checks
        finally:
            pair.primary.start(port=pair.primary.port)
