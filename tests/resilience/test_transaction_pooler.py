"""Behind a real pgbouncer in transaction mode (`COURTYARD_DB_POOLER=transaction`), as most
production PostgreSQL runs: every client transaction may land on another server
connection, which a prepared statement kept from an earlier transaction, or a setting
sent at connect time, does not survive.

What a client must see: mixed concurrent traffic of every built-in plugin answered without
a single 5xx, the statement timeout still cutting a blocked statement short (503), and no
prepared statement left behind on the server connections pgbouncer shares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from core.app import create_app
from tests.conftest import make_settings, migrate, running
from tests.resilience.conftest import (
    AUTH,
    ME,
    PASSWORD,
    PLUGINS,
    UPLOADS,
    answered,
    asyncpg_dsn,
    bearer,
    holding,
    pg_rows,
    signed_up,
)
from tests.support.databases import fresh_database
from tests.support.pgbouncer import SERVER_POOL_SIZE, pgbouncer

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]

USERS = 8  # concurrent clients, against pgbouncer's two server connections
ROUNDS = 3
STATEMENT_TIMEOUT = 1.0
LEFT_BEHIND = "SELECT count(*) FROM pg_prepared_statements"
LIMITS = {"login_limit_per_ip": "100000/minute", "login_limit_per_account": "100000/minute"}


@pytest.fixture
def bounced_url(pg_url: str) -> Iterator[str]:
    """The migrated test database, reached through pgbouncer."""
    with pgbouncer(pg_url) as url:
        yield url


@asynccontextmanager
async def pooled_app(url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        url,
        enabled_plugins=PLUGINS,
        db_pooler="transaction",
        db_statement_timeout=STATEMENT_TIMEOUT,
        db_pool_size=6,
        # The driver's own deadline (statement timeout + connect timeout) far beyond the
        # bound the timeout test waits for: only the server's timeout can answer in time.
        db_connect_timeout=30,
    )
    plugin_settings = {"auth": LIMITS, "upload": {"local_root": tmp_path / "uploads"}}
    app = create_app(settings, plugin_settings=plugin_settings)
    async with running(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def one_user(client: httpx.AsyncClient, n: int) -> list[tuple[str, int]]:
    """A user's whole visit: every answer as (what, status)."""
    answers: list[tuple[str, int]] = []

    def seen(what: str, response: httpx.Response) -> httpx.Response:
        answers.append((what, response.status_code))
        return response

    email = f"pooled{n}@example.com"
    signup = seen(
        "signup",
        await client.post(
            f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "name": f"Pooled {n}"}
        ),
    )
    if signup.status_code != 201:
        return answers
    refresh = signup.json()["refresh_token"]
    for round_ in range(ROUNDS):
        login = seen(
            "login", await client.post(f"{AUTH}/login", json={"email": email, "password": PASSWORD})
        )
        if login.status_code != 200:
            continue
        auth = bearer(login.json())
        renewed = seen(
            "refresh", await client.post(f"{AUTH}/refresh", json={"refresh_token": refresh})
        )
        if renewed.status_code == 200:
            refresh = renewed.json()["refresh_token"]
        seen("me", await client.get(ME, headers=auth))
        seen("rename", await client.patch(ME, headers=auth, json={"name": f"Pooled {n}.{round_}"}))
        grant = {"filename": f"photo{round_}.png", "content_type": "image/png", "size": 1024}
        seen("grant", await client.post(UPLOADS, headers=auth, json=grant))
        seen("uploads", await client.get(UPLOADS, headers=auth))
        seen("sessions", await client.get(f"{AUTH}/sessions", headers=auth))
    return answers


async def prepared_statements_left(bounced_url: str) -> list[int]:
    """The prepared statements on each of pgbouncer's server connections: as many clients
    as it has server connections, each holding a transaction open at once, so each is on
    a server connection of its own."""
    clients = [
        await asyncpg.connect(asyncpg_dsn(bounced_url), statement_cache_size=0)
        for _ in range(SERVER_POOL_SIZE)
    ]
    transactions = [client.transaction() for client in clients]
    try:
        for transaction in transactions:
            await transaction.start()
        return [int(await client.fetchval(LEFT_BEHIND)) for client in clients]
    finally:
        for client, transaction in zip(clients, transactions, strict=True):
            await transaction.rollback()
            await client.close()


EXPECTED = {
    "signup": 201,
    "login": 200,
    "refresh": 200,
    "me": 200,
    "rename": 200,
    "grant": 201,
    "uploads": 200,
    "sessions": 200,
}


async def test_mixed_concurrent_traffic_through_pgbouncer_gets_no_error(
    bounced_url: str, tmp_path: Path
) -> None:
    async with pooled_app(bounced_url, tmp_path) as client:
        visits = await asyncio.gather(*(one_user(client, n) for n in range(USERS)))
        answers = [answer for visit in visits for answer in visit]
        wrong = Counter(answer for answer in answers if answer[1] != EXPECTED[answer[0]])
        assert not wrong, f"unexpected answers (what, status): {dict(wrong)}"
        done = Counter(what for what, _ in answers)
        assert done == {
            "signup": USERS,
            **{what: USERS * ROUNDS for what in EXPECTED if what != "signup"},
        }
    # No prepared statement outlives its transaction on the server connections pgbouncer
    # shares.
    left = await prepared_statements_left(bounced_url)
    assert left == [0] * SERVER_POOL_SIZE, f"prepared statements left per server: {left}"


async def test_the_statement_timeout_still_holds_through_pgbouncer(
    pg_url: str, bounced_url: str, tmp_path: Path
) -> None:
    """pgbouncer refuses `statement_timeout` as a startup parameter; set per transaction,
    it still cancels a statement stuck on a lock, and the client gets a 503."""
    async with pooled_app(bounced_url, tmp_path) as client:
        tokens = await signed_up(client, "blocked@example.com")
        auth = bearer(tokens)
        async with holding(
            pg_url, 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', tokens["user"]["id"]
        ):
            blocked = await answered(
                client.patch(ME, headers=auth, json={"name": "Blocked"}), STATEMENT_TIMEOUT + 5
            )
        assert blocked.status_code == 503, blocked.text
        assert blocked.json()["code"] == "core.database_unavailable"
        assert int(blocked.headers["retry-after"]) > 0
        renamed = await client.patch(ME, headers=auth, json={"name": "Free"})
        assert renamed.status_code == 200, renamed.text
        assert (await client.get(ME, headers=auth)).json()["name"] == "Free"


async def test_migrations_run_through_pgbouncer(tmp_path: Path) -> None:
    async with fresh_database("postgresql", tmp_path) as url:
        with pgbouncer(url) as bounced:
            await migrate(make_settings(bounced, enabled_plugins=PLUGINS, db_pooler="transaction"))
        tables = await pg_rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert {"user", "auth_session", "upload_file"} <= {name for (name,) in tables}
