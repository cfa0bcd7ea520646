"""What the scale suite needs on the machine, checked before anything starts.

The suite runs real components: PostgreSQL's server programs (a private primary and its
streaming replica), pgbouncer, HAProxy and the machine's Redis. A missing one fails the
run with one line saying what to install or start; it never skips, so a CI machine that
lost a package cannot go green without having run the suite.
"""

from __future__ import annotations

import os
import shutil

import redis

from tests.support.haproxy import HaproxyNotInstalled
from tests.support.haproxy import binary as haproxy_binary
from tests.support.pg_cluster import PostgresNotInstalled, server_binaries

REDIS_URL = "redis://127.0.0.1:6379/12"  # the suite's own database: only it is flushed
_REPLICA_TOOLS = ("pg_basebackup", "psql")


def missing() -> list[str]:
    """One line per missing requirement (empty when everything is there)."""
    problems: list[str] = []
    try:
        bindir = server_binaries()
    except PostgresNotInstalled as exc:
        problems.append(f"PostgreSQL server programs: {exc}")
    else:
        absent = [tool for tool in _REPLICA_TOOLS if not os.access(bindir / tool, os.X_OK)]
        if absent:
            problems.append(
                f"{', '.join(absent)} not found in {bindir}: install the PostgreSQL client "
                "programs (`apt-get install postgresql`)"
            )
    if not (shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")):
        problems.append("pgbouncer was not found: install it (`apt-get install pgbouncer`)")
    try:
        haproxy_binary()
    except HaproxyNotInstalled as exc:
        problems.append(str(exc))
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis does not answer at {REDIS_URL} ({type(exc).__name__}): start the "
            "machine's Redis (`apt-get install redis-server`, then start it)"
        )
    return problems
