"""PostgreSQL refusing new connections while it shuts down (SQLSTATE 57P03).

A connect-time failure must be a 503 problem with `Retry-After` on every route, like any
other outage, never a 500: the hot path (sign-in, the account check on every signed-in
request) checks connections out of the pool itself, and once let the driver's raw error
through. The server here is a private cluster (tests/support/pg_cluster.py), stopped in
smart mode while another session keeps it alive: it answers every new connection with
"the database system is shutting down". The machine's server is never stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from core.app import create_app
from tests.conftest import make_settings, migrate, running
from tests.resilience.conftest import (
    APP_NAME,
    FAST_FAILURE,
    PLUGINS,
    READY,
    answered,
    asyncpg_dsn,
    eventually,
    pg_connection,
    signed_up,
)
from tests.resilience.test_db_faults import (
    OUTAGE_BOUND,
    assert_unavailable,
    requests_of_every_kind,
)
from tests.support.databases import PG_ENV
from tests.support.pg_cluster import PgCluster, PostgresNotInstalled, pg_cluster
from tests.support.problems import assert_problem

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL server, removed afterwards. Without the server programs this
    fails where PostgreSQL is under test (COURTYARD_TEST_DATABASE_URL set), else skips."""
    try:
        with pg_cluster() as cluster:
            yield cluster
    except PostgresNotInstalled as missing:
        if os.environ.get(PG_ENV):
            pytest.fail(f"{PG_ENV} is set but {missing}")
        pytest.skip(str(missing))


async def _refuses_new_connections(url: str) -> bool:
    """True once the server answers a new connection with 57P03 (any other error fails)."""
    try:
        connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    except asyncpg.CannotConnectNowError:  # SQLSTATE 57P03
        return True
    await connection.close()
    return False


async def test_a_server_shutting_down_answers_503_on_every_route(
    cluster: PgCluster, tmp_path: Path
) -> None:
    settings = make_settings(cluster.url, enabled_plugins=PLUGINS, **FAST_FAILURE)
    await migrate(settings)
    app = create_app(settings, plugin_settings={"upload": {"local_root": tmp_path / "uploads"}})
    async with running(app) as client:
        tokens = await signed_up(client, "ann@example.com")
        assert (await client.get(READY)).status_code == 200

        async with pg_connection(cluster.url) as held:  # keeps the server from going away
            cluster.stop("smart", wait=False)
            await eventually(
                lambda: _refuses_new_connections(cluster.url), 10, "refusing new connections"
            )
            # The app's connections outlive a smart shutdown: end them (as an operator
            # would), and let the pool forget them, so that every request needs a new one.
            # (A pooled connection found dead fails its statement: covered by the faults.)
            app_backends = "FROM pg_stat_activity WHERE application_name = $1"
            await held.execute(f"SELECT pg_terminate_backend(pid) {app_backends}", APP_NAME)
            await eventually(
                lambda: _none_left(held, f"SELECT count(*) {app_backends}"),
                10,
                "the app's connections ending",
            )
            await app.state.database.dispose()

            kinds = requests_of_every_kind(client, tokens)
            responses = {kind: await answered(send(), OUTAGE_BOUND) for kind, send in kinds.items()}
            ready = await answered(client.get(READY), OUTAGE_BOUND)
            assert await _refuses_new_connections(cluster.url)  # still shutting down

    statuses = {kind: response.status_code for kind, response in responses.items()}
    assert statuses == dict.fromkeys(kinds, 503), {k: r.text for k, r in responses.items()}
    for response in responses.values():
        assert_unavailable(response)
    checks = assert_problem(ready, 503, "core.not_ready")["checks"]
    assert checks["database"] != "ok", checks


async def _none_left(connection: asyncpg.Connection, count: str) -> bool:
    return int(await connection.fetchval(count, APP_NAME)) == 0
