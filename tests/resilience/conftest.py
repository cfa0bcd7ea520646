"""Shared pieces of the resilience suite: apps with the built-in plugins, PostgreSQL behind
a TCP proxy the test controls, locks held behind the app's back, and `courtyard serve`.

Modules that need PostgreSQL (faults, shutdown, soak) exist only when
COURTYARD_TEST_DATABASE_URL is set, as in tests/core/test_health.py: they are collected
then, not skipped otherwise, so `make test` on a bare machine (SQLite) stays green.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from core.app import create_app
from tests.conftest import make_settings, migrate, running
from tests.support.courtyard_cli import PROJECT_ROOT
from tests.support.databases import backends, fresh_database
from tests.support.served import serving, wait_until_live
from tests.support.tcpproxy import TcpProxy

PG_ONLY = [
    "test_db_faults.py",
    "test_shutdown.py",
    "test_soak.py",
    "test_schema_change.py",
    "test_transaction_pooler.py",
]
collect_ignore = [] if "postgresql" in backends() else PG_ONLY

PLUGINS = "user,auth,mail,upload"
AUTH = "/api/v1/auth"
USERS = "/api/v1/users"
ME = f"{USERS}/me"
UPLOADS = "/api/v1/uploads"
READY = "/health/ready"
PASSWORD = "correct horse battery staple"
APP_NAME = "courtyard"  # the application_name the app's PostgreSQL connections carry
WATCHER = "courtyard-resilience-test"  # ours, so that we never count ourselves


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def signup(client: httpx.AsyncClient, email: str, name: str = "Racer") -> httpx.Response:
    return await client.post(
        f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "name": name}
    )


async def signed_up(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Sign up through the API; the 201 body (user and tokens)."""
    response = await signup(client, email)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def answered(request: Awaitable[httpx.Response], within: float) -> httpx.Response:
    """The response, which must come within `within` seconds: a bound derived from the
    configured timeouts plus slack, never a speed target."""
    try:
        return await asyncio.wait_for(request, timeout=within)
    except TimeoutError:
        pytest.fail(f"the request hung for {within:g}s instead of answering")


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:g}s")
        await asyncio.sleep(0.05)


# -- PostgreSQL behind the app's back ------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def pg_connection(url: str) -> AsyncIterator[Any]:
    """A direct asyncpg connection to the database at `url` (not through any proxy)."""
    connection = await asyncpg.connect(
        asyncpg_dsn(url), timeout=10, server_settings={"application_name": WATCHER}
    )
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def holding(url: str, statement: str, *args: Any) -> AsyncIterator[None]:
    """Run `statement` (e.g. `SELECT … FOR UPDATE`, `LOCK TABLE …`) in an open transaction
    of another client, and keep it open — its locks held — for the block."""
    async with pg_connection(url) as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute(statement, *args)
            yield
        finally:
            await transaction.rollback()


async def pg_rows(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with pg_connection(url) as connection:
        return [tuple(row) for row in await connection.fetch(query, *args)]


async def app_backends(url: str) -> list[tuple[str, str | None, str | None]]:
    """(state, wait_event_type, query) of every connection the app holds to this database."""
    return await pg_rows(
        url,
        "SELECT state, wait_event_type, query FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = $1 "
        "AND pid <> pg_backend_pid()",
        APP_NAME,
    )


async def waiting_on_locks(url: str) -> int:
    """How many of the app's statements are waiting for a lock right now."""
    return sum(1 for _, wait, _ in await app_backends(url) if wait == "Lock")


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, migrated for the built-in plugins."""
    async with fresh_database("postgresql", tmp_path) as url:
        await migrate(make_settings(url, enabled_plugins=PLUGINS))
        yield url


# -- the app in-process, its database behind a proxy ---------------------------------------


@dataclass
class Proxied:
    """A running app whose PostgreSQL connections all go through `proxy`; `url` reaches the
    database directly, to check what was stored."""

    client: httpx.AsyncClient
    proxy: TcpProxy
    url: str

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    @property
    def pool(self) -> Any:
        return self.app.state.database.write_engine.pool


ProxiedFactory = Callable[..., AbstractAsyncContextManager[Proxied]]

# Small timeouts keep outage tests short; every bound asserted is derived from these.
FAST_FAILURE = {
    "db_connect_timeout": 1,
    "db_pool_timeout": 1,
    "db_statement_timeout": 1,
    "ready_timeout": 1,
}


@pytest.fixture
def proxied_app(pg_url: str, tmp_path: Path) -> ProxiedFactory:
    """`async with proxied_app(db_pool_size=2) as app:` — core settings as keywords, over
    FAST_FAILURE; the proxy is restored before the app shuts down."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Proxied]:
        server = make_url(pg_url)
        async with TcpProxy(server.host or "127.0.0.1", server.port or 5432) as proxy:
            via_proxy = server.set(host=proxy.host, port=proxy.port)
            settings = make_settings(
                via_proxy.render_as_string(hide_password=False),
                enabled_plugins=PLUGINS,
                **{**FAST_FAILURE, **overrides},
            )
            uploads = {"upload": {"local_root": tmp_path / "uploads"}}
            app = create_app(settings, plugin_settings=uploads)
            async with running(app) as client:
                client.app = app  # type: ignore[attr-defined]
                try:
                    yield Proxied(client, proxy, pg_url)
                finally:
                    await proxy.restore()  # so that shutdown can close its connections

    return factory


# -- `courtyard serve` ----------------------------------------------------------------------


def served_environment(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a deployment sets: environment variables only. Sign-in limits are raised so
    that a test's own traffic from 127.0.0.1 is not throttled."""
    return {
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_ENV": "test",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_IP": "100000/minute",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_ACCOUNT": "100000/minute",
        "COURTYARD_UPLOAD__LOCAL_ROOT": str(tmp_path / "uploads"),
        "COURTYARD_UPLOAD__QUOTA_FILES": "100000",
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }


@contextmanager
def served(database_url: str, tmp_path: Path, **extra: str) -> Iterator[tuple[str, Any, Path]]:
    """`courtyard serve` on a migrated database: (base URL, process, log file)."""
    log = tmp_path / "serve.log"
    with serving(served_environment(database_url, tmp_path, **extra), tmp_path, log) as (
        base_url,
        process,
    ):
        yield base_url, process, log


async def live(base_url: str, process: Any, log: Path) -> None:
    await wait_until_live(base_url, process, log)
