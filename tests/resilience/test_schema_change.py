"""A column's type changed while the app serves (a deploy's migration, from another
connection): the prepared statements the app's pooled connections keep no longer match
the table, and the first use of each fails (`InvalidCachedStatementError`).

What a client must see: no 500. A read, which runs outside a transaction, is run again
and answers 200; a write whose transaction the server aborted answers 503 with
`Retry-After` (nothing written), and the same write sent again succeeds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from core.app import create_app
from core.db.errors import is_stale_statement
from tests.conftest import make_settings, running
from tests.resilience.conftest import ME, PLUGINS, USERS, bearer, pg_connection, signed_up

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]

CLIENTS = 6
WARM_ROUNDS = 3  # before the change: every pooled connection has its statements cached
ROUNDS_AFTER = 4


async def visit(client: httpx.AsyncClient, user: dict[str, Any], n: int) -> list[tuple[str, int]]:
    """A user reads their account (the account check and the read), renames it, and reads
    it by id: every answer as (read or write, status)."""
    auth = bearer(user)
    me = await client.get(ME, headers=auth)
    renamed = await client.patch(ME, headers=auth, json={"name": f"Deployed {n}"})
    by_id = await client.get(f"{USERS}/{user['user']['id']}", headers=auth)
    return [("read", me.status_code), ("write", renamed.status_code), ("read", by_id.status_code)]


async def test_a_column_type_change_while_serving_costs_no_500(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(pg_url, enabled_plugins=PLUGINS, db_pool_size=CLIENTS)
    app = create_app(settings, plugin_settings={"upload": {"local_root": tmp_path / "uploads"}})
    async with running(app) as client:
        users = [await signed_up(client, f"deploy{n}@example.com") for n in range(CLIENTS)]

        async def everyone(rounds: int) -> list[tuple[str, int]]:
            answers: list[tuple[str, int]] = []
            for _ in range(rounds):
                visits = await asyncio.gather(*(visit(client, u, n) for n, u in enumerate(users)))
                answers += [answer for one in visits for answer in one]
            return answers

        before = await everyone(WARM_ROUNDS)
        assert set(before) == {("read", 200), ("write", 200)}, Counter(before)

        stale: list[BaseException] = []

        def seen_stale(context: Any) -> None:
            if is_stale_statement(context.sqlalchemy_exception):
                stale.append(context.sqlalchemy_exception)

        engine = app.state.database.write_engine.sync_engine
        event.listen(engine, "handle_error", seen_stale)
        async with pg_connection(pg_url) as connection:
            await connection.execute('ALTER TABLE "user" ALTER COLUMN name TYPE text')
        after = await everyone(ROUNDS_AFTER)
        event.remove(engine, "handle_error", seen_stale)

    assert stale, "no statement went stale: the test did not test anything"
    seen = Counter(after)
    assert set(seen) <= {("read", 200), ("write", 200), ("write", 503)}, seen
    assert seen[("write", 200)] >= CLIENTS * (ROUNDS_AFTER - 1), seen  # the later rounds
