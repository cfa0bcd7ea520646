"""Failover: the primary dies, the operator promotes its streaming replica, writes resume.

One `courtyard serve` whose COURTYARD_DATABASE_URL names both servers,
`?host=<primary>&host=<replica>&target_session_attrs=read-write`: asyncpg tries the hosts
in order and keeps the first that accepts writes. While the primary is down and the
replica not yet promoted no host does, and writes answer 503 with Retry-After (the client
is told to retry, never a 500); the pool drops the connections the dead primary left it,
and once the replica is promoted the next connection lands on it, so writes answer 2xx
again within `RESUME_WITHIN` seconds of the promotion.

The test has a private primary and replica of its own (not the suite's shared topology:
it kills the primary), no pgbouncer (the app itself must find the new primary), no read
replica URL and no Redis. Without `target_session_attrs=read-write`, a write between the
crash and the promotion would go to the read-only replica and answer 500; with the
primary's host alone, writes would never resume: either fails this test.

The test servers commit with `synchronous_commit = off` (and the replica is asynchronous
in any case), so a write acknowledged just before the crash may not have reached the
replica and is lost in the failover. The test asserts only on data the replica had
replayed before the primary was killed (the account, its password, its name then), and on
writes acknowledged after the promotion.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.scale.clients import ME, READY, Account, Outcome, sign_in, sign_up
from tests.scale.instances import Instance
from tests.support.courtyard_cli import PROJECT_ROOT, run_courtyard
from tests.support.pg_cluster import PgCluster, pg_cluster, streaming_replica

pytestmark = pytest.mark.scale

RESUME_WITHIN = 10.0  # seconds from the promotion to the first write answered 2xx
CAUGHT_UP_WITHIN = 30.0  # seconds for the replica to replay what the primary wrote
DOWN_FOR = 1.0  # seconds the app runs with the primary dead and no replica promoted
WRITE_PAUSE = 0.05  # seconds between two writes of the loop
SECRET_KEY = "failover-test-secret-5e81c0d94b2a7f36"


@dataclass
class Failover:
    primary: PgCluster
    replica: PgCluster
    instance: Instance


def failover_url(primary: PgCluster, replica: PgCluster) -> str:
    """Both servers, the primary first, and only a server that accepts writes will do."""
    return (
        "postgresql+asyncpg://postgres@/postgres"
        f"?host=127.0.0.1:{primary.port}&host=127.0.0.1:{replica.port}"
        "&target_session_attrs=read-write"
    )


@pytest.fixture
def failover() -> Iterator[Failover]:
    """A private primary and its streaming replica, migrated, and one instance on both."""
    with ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="courtyard-failover-"))
        stack.callback(shutil.rmtree, folder, True)
        primary = stack.enter_context(pg_cluster())
        replica = stack.enter_context(streaming_replica(primary))
        environment = {
            "COURTYARD_ENV": "test",
            "COURTYARD_DATABASE_URL": failover_url(primary, replica),
            "COURTYARD_SECRET_KEY": SECRET_KEY,
            "COURTYARD_ENABLED_PLUGINS": "user,auth,mail",
            "COURTYARD_DB_POOL_SIZE": "5",
            "COURTYARD_DB_MAX_OVERFLOW": "3",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        upgraded = run_courtyard("db", "upgrade", cwd=folder, env=environment)
        if upgraded.returncode != 0:
            raise RuntimeError(f"courtyard db upgrade failed:\n{upgraded.stderr}")
        instance = Instance("f1", environment, folder)
        stack.callback(instance.stop)
        instance.start()
        instance.wait_live()
        yield Failover(primary, replica, instance)


async def replica_caught_up(primary: PgCluster, replica: PgCluster) -> None:
    """Until the replica has replayed everything the primary has written so far: what is
    asserted on after the failover must not depend on the asynchronous commit."""
    written = await asyncio.to_thread(primary.sql, "SELECT pg_current_wal_insert_lsn()")
    replayed = f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
    deadline = time.monotonic() + CAUGHT_UP_WITHIN
    while await asyncio.to_thread(replica.sql, replayed) != "t":
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.05)


@dataclass
class Writes:
    """One client renaming itself (`PATCH /users/me`) again and again, every outcome kept
    with the Retry-After of each 503; `last_written` is the last name answered 2xx."""

    client: httpx.AsyncClient
    account: Account
    outcomes: list[Outcome] = field(default_factory=list)
    without_retry_after: list[Outcome] = field(default_factory=list)
    last_written: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            name, sent = f"Ann {n}", time.monotonic()
            try:
                response = await self.client.patch(
                    ME, json={"name": name}, headers=self.account.headers
                )
                result = str(response.status_code)
            except httpx.TransportError as exc:
                response, result = None, type(exc).__name__
            outcome = Outcome(sent, time.monotonic(), "PATCH /me", result)
            self.outcomes.append(outcome)
            if outcome.ok:
                self.last_written = name
            elif response is not None and result == "503" and "retry-after" not in response.headers:
                self.without_retry_after.append(outcome)
            await asyncio.sleep(WRITE_PAUSE)

    def first_ok(self, sent_from: float) -> Outcome | None:
        return next((o for o in self.outcomes if o.sent >= sent_from and o.ok), None)


async def test_writes_resume_once_the_replica_is_promoted(failover: Failover) -> None:
    primary, replica, instance = failover.primary, failover.replica, failover.instance
    async with httpx.AsyncClient(base_url=instance.url, timeout=15) as client:
        ann = await sign_up(client, "ann", name="Ann")
        renamed = await client.patch(ME, json={"name": "Ann Before"}, headers=ann.headers)
        assert renamed.status_code == 200, renamed.text
        await replica_caught_up(primary, replica)  # the account and its name are safe

        writes = Writes(client, ann)
        stop = asyncio.Event()
        loop = asyncio.create_task(writes.run(stop))
        try:
            await asyncio.sleep(0.5)
            assert writes.first_ok(0.0), f"no write succeeded before the failure: {writes}"
            killed = time.monotonic()
            await asyncio.to_thread(primary.stop, "immediate")
            await asyncio.sleep(DOWN_FOR)

            promoting = time.monotonic()
            promoted = await asyncio.to_thread(replica.sql, "SELECT pg_promote()")
            assert promoted == "t", f"pg_promote() answered {promoted!r}\n{replica.log()}"
            promoted_at = time.monotonic()

            while (resumed := writes.first_ok(promoting)) is None:
                assert time.monotonic() - promoting < RESUME_WITHIN, (
                    f"no write answered 2xx within {RESUME_WITHIN:g}s of the promotion: "
                    f"{[o.result for o in writes.outcomes if o.sent >= killed]}\n"
                    f"{instance.output()}"
                )
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a few more writes on the new primary
        finally:
            stop.set()
            await loop

        during = [o.result for o in writes.outcomes if killed <= o.sent < resumed.sent]
        after = [o.result for o in writes.outcomes if o.sent >= resumed.sent]
        print(
            f"\nfailover: promotion took {promoted_at - promoting:.2f}s; first 2xx write "
            f"{resumed.answered - promoting:.2f}s after the promotion began "
            f"({resumed.answered - promoted_at:.2f}s after pg_promote() returned); "
            f"between the crash and then: {len(during)} writes, {sorted(set(during))}"
        )
        assert set(during) <= {"200", "503"}, f"not 'retry' while failing over: {during}"
        assert not writes.without_retry_after, "a 503 without Retry-After"
        assert set(after) == {"200"}, f"writes failed again after resuming: {after}"

        signed_in = await sign_in(client, ann.email)  # written before the crash, replayed
        assert signed_in.status_code == 200, signed_in.text
        me = await client.get(ME, headers=ann.headers)
        assert me.status_code == 200, me.text
        assert me.json()["name"] == writes.last_written, "a write answered 2xx was lost"
        assert replica.sql(f"SELECT name FROM \"user\" WHERE id = '{ann.user_id}'") == (
            writes.last_written
        )
        ready = await client.get(READY)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok", ready.text
