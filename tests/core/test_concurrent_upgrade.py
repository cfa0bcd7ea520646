"""`courtyard db upgrade` run by several processes at the same moment, on PostgreSQL.

A deployment starts its instances together and each may run the upgrade as it starts. They
take turns on a PostgreSQL advisory lock (`core.migrator.MIGRATION_LOCK_KEY`): one migrates,
the others wait for it, find every branch at its head and say so, and all exit 0. Every
process here is the real console script, against a fresh database with all the built-in
plugins enabled. (SQLite has one writer at a time already: tests/core/test_migrations.py.)

Without the lock, processes started together collide (all but one fail creating
`alembic_version`) only when their starts overlap, which depends on the machine's load; so
the second test holds the lock itself and shows every process waits on it, which fails
every time the lock is missing.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Connection, func, inspect, literal, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.kernel import Kernel
from core.migrator import MIGRATION_LOCK_KEY, Migrator
from tests.conftest import make_settings
from tests.support.courtyard_cli import run_courtyard, start_courtyard
from tests.support.databases import (
    backends,
    fetch,
    fresh_database,
    inspect_database,
    reflected_shape,
)

BUILT_INS = "user,auth,mail,oauth,upload"
MIGRATING = ["user", "auth", "oauth", "upload"]  # in plugin order; `mail` has no tables
ALREADY_AT_HEAD = f"already at head: {', '.join(MIGRATING)}"  # what the others find
WAITING = "waiting for another migration of this database to finish…"
PROCESSES = 3
FINISH_WITHIN = 120.0  # seconds: a bound for a slow, shared machine, not a speed target

# A bigint advisory lock key shows in pg_locks as two 32-bit halves.
_UNSIGNED_KEY = MIGRATION_LOCK_KEY % 2**64
LOCK_WAITERS = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1"
    " AND l.classid = :high AND l.objid = :low"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str


def environment(url: str) -> dict[str, str]:
    return {
        "COURTYARD_DATABASE_URL": url,
        "COURTYARD_ENABLED_PLUGINS": BUILT_INS,
        "COURTYARD_ENV": "test",
    }


@contextmanager
def upgrades_started(url: str, folder: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """`PROCESSES` runs of `courtyard db upgrade`, started one right after the other; any
    still running when the block ends (a failed test) is killed."""
    processes = [
        start_courtyard("db", "upgrade", cwd=folder, env=environment(url)) for _ in range(PROCESSES)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


def upgraded_from_base() -> str:
    """What the one that migrates a fresh database says it did: every branch, from base to
    its head."""
    heads = Migrator(Kernel.build(make_settings("sqlite://", enabled_plugins=BUILT_INS))).heads()
    return f"upgraded: {', '.join(f'{name} (base → {heads[name]})' for name in MIGRATING)}"


def outcomes(processes: list[subprocess.Popen[str]]) -> list[Outcome]:
    deadline = time.monotonic() + FINISH_WITHIN
    finished = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1.0))
        finished.append(Outcome(process.returncode, stdout, stderr))
    return finished


async def schema(url: str) -> tuple[dict[str, Any], list[str]]:
    """Every table as reflected (columns, keys, constraints, indexes), and the rows of
    `alembic_version`."""

    def shapes(connection: Connection) -> dict[str, Any]:
        names = inspect(connection).get_table_names()
        return {name: reflected_shape(connection, name) for name in names}

    versions = await fetch(url, "SELECT version_num FROM alembic_version")
    return await inspect_database(url, shapes), sorted(row[0] for row in versions)


async def table_names(url: str) -> list[str]:
    return list(await inspect_database(url, lambda c: inspect(c).get_table_names()))


@pytest.fixture(scope="module")
def single_upgrade(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """The schema one `courtyard db upgrade` gives a fresh database, alone."""
    folder = tmp_path_factory.mktemp("single")

    async def upgrade_alone() -> tuple[dict[str, Any], list[str]]:
        async with fresh_database("postgresql", folder) as url:
            alone = run_courtyard("db", "upgrade", cwd=folder, env=environment(url))
            assert alone.returncode == 0, alone.stderr
            assert alone.stdout.splitlines() == [
                *(f"upgrading {name} → head" for name in MIGRATING),
                upgraded_from_base(),
            ]
            return await schema(url)

    return asyncio.run(upgrade_alone())


def assert_one_migrated_and_the_others_found_it_done(finished: list[Outcome]) -> None:
    """Every process exited 0; exactly one says it upgraded the branches (all of them,
    from base), the others that they found them at their heads."""
    for outcome in finished:
        assert outcome.status == 0, outcome
        assert "Traceback" not in outcome.stderr, outcome.stderr
    upgraders = [o for o in finished if "upgrading" in o.stdout]
    assert len(upgraders) == 1, finished
    assert upgraders[0].stdout.splitlines() == [
        *(f"upgrading {name} → head" for name in MIGRATING),
        upgraded_from_base(),
    ]
    for outcome in finished:
        if outcome is not upgraders[0]:
            assert outcome.stdout.splitlines() == [ALREADY_AT_HEAD], outcome


async def waiters_on_the_lock(url: str) -> list[str]:
    """The application names of the connections waiting for the migration lock."""
    rows = await fetch(url, LOCK_WAITERS, high=_UNSIGNED_KEY >> 32, low=_UNSIGNED_KEY & 0xFFFFFFFF)
    return [row[0] for row in rows]


async def until_all_wait_for_the_lock(url: str, processes: list[subprocess.Popen[str]]) -> None:
    """Return once every process waits for the migration lock; fail if one finishes first
    (it did not wait) or they do not all get there in time."""
    deadline = time.monotonic() + FINISH_WITHIN
    while (waiting := await waiters_on_the_lock(url)) != ["courtyard"] * len(processes):
        done = [p for p in processes if p.poll() is not None]
        if done:
            stdout, stderr = done[0].communicate()
            pytest.fail(
                f"`courtyard db upgrade` finished (status {done[0].returncode}) while the "
                f"migration lock was held, instead of waiting:\n{stdout}{stderr}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"after {FINISH_WITHIN:g}s only {waiting} wait for the migration lock")
        await asyncio.sleep(0.1)


if "postgresql" in backends():

    @pytest.mark.postgres
    async def test_upgrades_started_together_all_succeed_and_migrate_once(
        tmp_path: Path, single_upgrade: tuple[dict[str, Any], list[str]]
    ) -> None:
        """Stops: instances started together each creating the same tables, all but one
        failing with a duplicate table, or a half-migrated database."""
        async with fresh_database("postgresql", tmp_path) as url:
            with upgrades_started(url, tmp_path) as processes:
                finished = outcomes(processes)

            assert_one_migrated_and_the_others_found_it_done(finished)
            assert await schema(url) == single_upgrade

    @pytest.mark.postgres
    async def test_upgrades_wait_while_the_lock_is_held_then_one_migrates(
        tmp_path: Path, single_upgrade: tuple[dict[str, Any], list[str]]
    ) -> None:
        """Shows the lock is what serialises them: while a connection of the test holds it,
        every upgrade waits on it, the database untouched; released, the three contend for
        it at the same moment, and the database ends as one upgrade leaves it."""
        async with fresh_database("postgresql", tmp_path) as url:
            holder = create_async_engine(url, poolclass=NullPool)
            try:
                async with holder.connect() as held:
                    lock = func.pg_advisory_xact_lock(literal(MIGRATION_LOCK_KEY, BigInteger))
                    await held.execute(select(lock))  # held until this transaction ends
                    with upgrades_started(url, tmp_path) as processes:
                        await until_all_wait_for_the_lock(url, processes)
                        await asyncio.sleep(1)
                        assert [p.poll() for p in processes] == [None] * PROCESSES
                        assert await waiters_on_the_lock(url) == ["courtyard"] * PROCESSES
                        assert await table_names(url) == []

                        await held.commit()  # releases the lock: all three want it now
                        finished = outcomes(processes)
            finally:
                await holder.dispose()

            assert_one_migrated_and_the_others_found_it_done(finished)
            for outcome in finished:
                assert WAITING in outcome.stderr.splitlines(), outcome.stderr
            assert await schema(url) == single_upgrade
