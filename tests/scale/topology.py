"""The deployment the scale suite runs against, started once and torn down however it ends:

    HAProxy (round robin, GET /health/ready every 0.3 s, out after 2 failures, back after 2)
      ├── courtyard serve i1 ─┐
      ├── courtyard serve i2 ─┼── pgbouncer (transaction mode) ── PostgreSQL primary
      └── courtyard serve i3 ─┘        reads ──────────────────── its streaming replica
                               └── Redis db 12: failed-login counters, read-your-writes marks

Every component is a real process of its own: a private primary and replica (initdb on
free ports in temporary folders, tests/support/pg_cluster.py; the machine's own server is
never touched), pgbouncer and HAProxy from the OS packages, `courtyard serve` instances
configured by environment variables only, with one secret key. Uploads go to one local
folder all instances share (as they would share a bucket). `courtyard db upgrade` runs
before the first instance starts.

The settings are the production defaults except where a test needs a shorter clock (the
revocation interval, the drain), a small limit it can reach (failed sign-ins per account)
or fewer connections (the private servers allow 40 each).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.scale.instances import Instance, stop_all
from tests.scale.requirements import REDIS_URL
from tests.support.courtyard_cli import PROJECT_ROOT, run_courtyard
from tests.support.haproxy import Balancer, HealthCheck, haproxy
from tests.support.pg_cluster import PgCluster, pg_cluster, streaming_replica
from tests.support.pgbouncer import pgbouncer

PLUGINS = "user,auth,mail,upload"
SECRET_KEY = "scale-suite-secret-9f2c7e41b8d05a63"  # the same on every instance
CHECK = HealthCheck(inter=0.3, fall=2, rise=2, timeout=2.0)
# Longer than HAProxy needs to take a draining instance out (CHECK.out_within: 0.9 s), with
# a margin for a loaded machine: requests keep coming until the balancer has noticed.
DRAIN = 2.0
REVOCATION_INTERVAL = 1.0  # seconds before a logout reaches every instance
LOGIN_LIMIT_PER_ACCOUNT = 3  # failed sign-ins per account per minute, shared through Redis
# Per instance and server: 3 instances x (5 + 3) = 24 of the replica's 40 connections.
POOL_SIZE, MAX_OVERFLOW = 5, 3


@dataclass
class Topology:
    primary: PgCluster
    replica: PgCluster
    database_url: str  # the primary, through pgbouncer: what the instances write to
    replica_url: str
    redis_url: str
    folder: Path  # the instances' working folder and logs; `uploads` is in it
    environment: dict[str, str]  # every instance's (and the suite's commands')
    instances: list[Instance]
    balancer: Balancer

    @property
    def url(self) -> str:
        """Where clients go: HAProxy."""
        return self.balancer.url

    @property
    def uploads(self) -> Path:
        return self.folder / "uploads"

    def logs(self) -> str:
        """The tail of every instance's log and HAProxy's, for failure messages."""
        parts = [f"== {i.name}\n{i.output(2000)}" for i in self.instances]
        return "\n".join([*parts, f"== haproxy\n{self.balancer.log(3000)}"])


def instance_environment(
    database_url: str, replica_url: str, folder: Path, extra: Mapping[str, str]
) -> dict[str, str]:
    return {
        "COURTYARD_ENV": "test",
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_DB_POOLER": "transaction",
        "COURTYARD_READ_DATABASE_URL": replica_url,
        "COURTYARD_REDIS_URL": REDIS_URL,
        "COURTYARD_SECRET_KEY": SECRET_KEY,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_DB_POOL_SIZE": str(POOL_SIZE),
        "COURTYARD_DB_MAX_OVERFLOW": str(MAX_OVERFLOW),
        "COURTYARD_SHUTDOWN_DRAIN": f"{DRAIN:g}",
        "COURTYARD_AUTH__REVOCATION_CHECK_INTERVAL": f"{REVOCATION_INTERVAL:g}",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_ACCOUNT": f"{LOGIN_LIMIT_PER_ACCOUNT}/minute",
        # Every client is 127.0.0.1 (HAProxy's address): the per-IP limit is not under test.
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_IP": "1000000/minute",
        "COURTYARD_UPLOAD__LOCAL_ROOT": str(folder / "uploads"),
        "COURTYARD_UPLOAD__QUOTA_FILES": "100000",
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }


def _flush_redis() -> None:
    """Empty the suite's Redis database (only that one)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def topology(count: int = 3, extra: Mapping[str, str] | None = None) -> Iterator[Topology]:
    """The deployment above with `count` instances (`extra`: more environment for them),
    running and in rotation; everything stopped and removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="courtyard-scale-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, True)
        primary = stack.enter_context(pg_cluster())
        replica = stack.enter_context(streaming_replica(primary))
        database_url = stack.enter_context(pgbouncer(primary.url))
        _flush_redis()
        stack.callback(_flush_redis)
        environment = instance_environment(database_url, replica.url, folder, extra or {})

        upgraded = run_courtyard("db", "upgrade", cwd=folder, env=environment)
        if upgraded.returncode != 0:
            raise RuntimeError(f"courtyard db upgrade failed:\n{upgraded.stderr}")

        instances = [Instance(f"i{n}", environment, folder) for n in range(1, count + 1)]
        stack.callback(stop_all, instances)
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_live()
        balancer = stack.enter_context(haproxy({i.name: i.port for i in instances}, CHECK))
        for instance in instances:
            balancer.wait_for(instance.name, "UP", within=10)
        yield Topology(
            primary,
            replica,
            database_url,
            replica.url,
            REDIS_URL,
            folder,
            environment,
            instances,
            balancer,
        )
