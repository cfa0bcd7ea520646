"""The core's tests. Modules that need PostgreSQL's own server programs (a private primary
and its streaming replica, tests/support/pg_cluster.py) exist only when
COURTYARD_TEST_DATABASE_URL is set, as in tests/resilience/conftest.py: they are collected
then (and fail without the programs), not skipped otherwise, so `make test` on a bare
machine (SQLite) stays green.
"""

from __future__ import annotations

from tests.support.databases import backends

PG_CLUSTER_ONLY = ["test_replica_routing.py"]
collect_ignore = [] if "postgresql" in backends() else PG_CLUSTER_ONLY
