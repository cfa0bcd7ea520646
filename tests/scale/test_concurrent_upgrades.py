"""`courtyard db upgrade` started by several processes at once, as instances that migrate
at their start do, through pgbouncer in transaction mode: every process exits 0, exactly
one of them migrates (the others wait on the advisory lock of core/migrator.py, then find
every branch at its head), and the schema is at head.

Started side by side, the processes would often not overlap: each spends a second or two
importing before it connects, and the migration itself is short. So the test holds the
migration lock itself until the processes are queued behind it (as behind a slow
migration of another deployment), then lets go: they all race for it at that moment. Only
pgbouncer's server pool (two connections) can wait on the lock at once; the third process
waits for a server connection in pgbouncer.

An empty database of its own on the suite's primary, reached through the suite's
pgbouncer: the deployment's database is already migrated.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import pytest

from core.migrator import MIGRATION_LOCK_KEY
from tests.scale.topology import Topology
from tests.support.courtyard_cli import parse_table, run_courtyard, start_courtyard
from tests.support.pg_cluster import SUPERUSER
from tests.support.pgbouncer import SERVER_POOL_SIZE

pytestmark = pytest.mark.scale

PROCESSES = 3
QUEUED_WITHIN = 30.0  # seconds for the processes to start and queue behind the lock
MIGRATED_PLUGINS = {"user", "auth", "upload"}  # the enabled plugins that have migrations
_WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@asynccontextmanager
async def migration_lock_held(scale: Topology, database: str) -> AsyncIterator[asyncpg.Connection]:
    """The migration lock of `database`, held by a direct connection for the block (the
    connection is yielded: it can see who waits)."""
    connection = await asyncpg.connect(
        host="127.0.0.1", port=scale.primary.port, user=SUPERUSER, database=database
    )
    try:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            yield connection
    finally:
        await connection.close()


async def test_upgrades_from_several_processes_at_once_migrate_once_and_all_exit_0(
    scale: Topology,
) -> None:
    database = f"upgrade_race_{uuid.uuid4().hex[:8]}"
    scale.primary.sql(f"CREATE DATABASE {database}")
    environment = {
        **scale.environment,
        "COURTYARD_DATABASE_URL": scale.database_url.rsplit("/", 1)[0] + f"/{database}",
        "COURTYARD_READ_DATABASE_URL": "",
    }
    processes: list[subprocess.Popen[str]] = []
    try:
        async with migration_lock_held(scale, database) as holder:
            for _ in range(PROCESSES):
                processes.append(
                    start_courtyard("db", "upgrade", cwd=scale.folder, env=environment)
                )
            deadline = time.monotonic() + QUEUED_WITHIN
            while await holder.fetchval(_WAITING) < min(PROCESSES, SERVER_POOL_SIZE):
                exited = [p.returncode for p in processes if p.poll() is not None]
                assert not exited, f"an upgrade ended while the lock was held: {exited}"
                assert time.monotonic() < deadline, "the upgrades did not queue behind the lock"
                await asyncio.sleep(0.05)
        outputs = await asyncio.gather(
            *(asyncio.to_thread(p.communicate, timeout=120) for p in processes)
        )
        current = run_courtyard("db", "current", cwd=scale.folder, env=environment)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        scale.primary.sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    shown = "\n---\n".join(out + err for out, err in outputs)
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, shown
        assert "Traceback" not in err, shown
        assert out.splitlines()[-1].startswith(("upgraded: ", "already at head: ")), shown
    assert sum("upgrading " in out for out, _ in outputs) == 1, shown
    waited = sum("waiting for another migration" in err for _, err in outputs)
    assert waited >= SERVER_POOL_SIZE, shown
    assert current.returncode == 0, current.stderr
    states = {row["PLUGIN"]: row["STATE"] for row in parse_table(current.stdout)}
    assert {states.get(p) for p in MIGRATED_PLUGINS} == {"at head"}, current.stdout
