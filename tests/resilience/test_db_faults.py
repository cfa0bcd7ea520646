"""PostgreSQL faults under the built-in plugins: the server going away (cut), the network
going silent (partition), a query outliving `statement_timeout`, and an exhausted pool.

What a client must see: a 503 problem with `Retry-After` within a bound derived from the
configured timeouts (never a hang, never a 500), `/health/ready` failing and coming back,
the first request after recovery succeeding, and no write half-applied.

tests/core/test_health.py already covers readiness and one plugin's reads and writes
through a cut and a partition; this module covers the real plugins' routes, writes cut
mid-transaction, lock waits and the pool. It exists only on PostgreSQL (see conftest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from tests.resilience.conftest import (
    AUTH,
    FAST_FAILURE,
    ME,
    PASSWORD,
    READY,
    UPLOADS,
    Proxied,
    ProxiedFactory,
    answered,
    app_backends,
    bearer,
    eventually,
    holding,
    pg_connection,
    pg_rows,
    signed_up,
    signup,
    waiting_on_locks,
)
from tests.support.problems import assert_problem

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]

# A request during an outage may wait for a connection (pool), to connect, and for one
# command; anything past that, plus generous slack for a loaded CI machine, is a hang.
OUTAGE_BOUND = sum(FAST_FAILURE.values()) + 5.0
SETTLE = 15.0  # seconds for the server to notice a dropped client and roll back


def assert_unavailable(response: httpx.Response) -> None:
    assert_problem(response, 503, "core.database_unavailable")
    assert int(response.headers["retry-after"]) > 0


async def app_is_idle(app: Proxied) -> bool:
    """The pool has everything back and the server holds no open transaction of the app."""
    states = {state for state, _, _ in await app_backends(app.url)}
    return app.pool.checkedout() == 0 and states <= {"idle"}


def requests_of_every_kind(
    client: httpx.AsyncClient, tokens: dict[str, Any]
) -> dict[str, Callable[[], Awaitable[httpx.Response]]]:
    """One request per kind of database work, as a signed-in client sends them."""
    auth = bearer(tokens)
    grant = {"filename": "a.png", "content_type": "image/png", "size": 10}
    return {
        "read me": lambda: client.get(ME, headers=auth),
        "update me": lambda: client.patch(ME, headers=auth, json={"name": "During"}),
        "list uploads": lambda: client.get(UPLOADS, headers=auth),
        "grant upload": lambda: client.post(UPLOADS, headers=auth, json=grant),
        "refresh": lambda: client.post(
            f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]}
        ),
        "login": lambda: client.post(
            f"{AUTH}/login", json={"email": tokens["user"]["email"], "password": PASSWORD}
        ),
        "signup": lambda: signup(client, "during@example.com"),
    }


@pytest.mark.parametrize("fault", ["cut", "partition"])
async def test_an_outage_answers_503_on_every_route_then_the_first_request_succeeds(
    proxied_app: ProxiedFactory, fault: str
) -> None:
    async with proxied_app() as app:
        tokens = await signed_up(app.client, "ann@example.com")
        assert (await app.client.get(READY)).status_code == 200

        await getattr(app.proxy, fault)()
        kinds = requests_of_every_kind(app.client, tokens)
        # All at once: a partition stalls each one for its full timeout.
        responses = await asyncio.gather(
            *(answered(send(), OUTAGE_BOUND) for send in kinds.values())
        )
        ready = await answered(app.client.get(READY), OUTAGE_BOUND)

        await app.proxy.restore()
        first = await app.client.get(ME, headers=bearer(tokens))
        assert first.status_code == 200, first.text
        assert first.json()["name"] != "During"
        assert (await app.client.get(READY)).status_code == 200

    for kind, response in zip(kinds, responses, strict=True):
        assert response.status_code == 503, (kind, response.text)
        assert_unavailable(response)
    assert_problem(ready, 503, "core.not_ready")
    assert await pg_rows(app.url, "SELECT 1 FROM \"user\" WHERE email = 'during@example.com'") == []


# -- a write cut mid-transaction ----------------------------------------------------------


def _is_credential_insert(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT INTO AUTH_CREDENTIAL")


@pytest.mark.parametrize("fault", ["cut", "partition"])
@pytest.mark.parametrize("moment", ["after the user row", "at commit"])
async def test_a_signup_interrupted_mid_transaction_is_all_or_nothing(
    proxied_app: ProxiedFactory, fault: str, moment: str
) -> None:
    """Stops an account without a password (or a password without an account): the fault
    strikes after `INSERT INTO user`, or just before `COMMIT` is sent. A partitioned COMMIT
    may still reach the server once traffic flows again, so the client's 503 does not
    promise "nothing": the promise is all or nothing, and a retry that ends signed up."""
    email = "mid@example.com"
    async with proxied_app() as app:
        assert (await app.client.get(READY)).status_code == 200
        engine = app.app.state.database.write_engine.sync_engine
        struck: list[str] = []

        def strike() -> None:
            if not struck:
                struck.append(moment)
                await_only(getattr(app.proxy, fault)())  # before the statement goes out

        def before_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if moment == "after the user row" and _is_credential_insert(statement):
                strike()

        def before_commit(_conn: Any) -> None:
            if moment == "at commit":
                strike()

        event.listen(engine, "before_cursor_execute", before_execute)
        event.listen(engine, "commit", before_commit)
        try:
            response = await answered(signup(app.client, email), OUTAGE_BOUND)
        finally:
            event.remove(engine, "before_cursor_execute", before_execute)
            event.remove(engine, "commit", before_commit)
        assert struck == [moment]
        assert_unavailable(response)

        await app.proxy.restore()
        await eventually(lambda: app_is_idle(app), SETTLE, "the app's transactions ending")
        [(users, credentials, sessions)] = await pg_rows(
            app.url,
            'SELECT (SELECT count(*) FROM "user" WHERE email = $1), '
            '(SELECT count(*) FROM auth_credential c JOIN "user" u ON u.id = c.user_id '
            " WHERE u.email = $1), "
            '(SELECT count(*) FROM auth_session s JOIN "user" u ON u.id = s.user_id '
            " WHERE u.email = $1)",
            email,
        )
        assert (users, credentials, sessions) in [(0, 0, 0), (1, 1, 1)]

        retry = await signup(app.client, email)
        if users:
            assert_problem(retry, 409, "user.email_taken")
        else:
            assert retry.status_code == 201, retry.text
        login = await app.client.post(f"{AUTH}/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text


# -- lock waits past statement_timeout ----------------------------------------------------


async def test_a_query_past_statement_timeout_is_503_and_the_pool_stays_healthy(
    proxied_app: ProxiedFactory,
) -> None:
    """Another client holds the caller's row (then the whole table) locked: the app's
    statement is cancelled by the server after `db_statement_timeout`, the client gets a
    503, and the connection goes back to the pool in working order."""
    timeout = FAST_FAILURE["db_statement_timeout"]
    async with proxied_app() as app:
        tokens = await signed_up(app.client, "ann@example.com")
        user_id = tokens["user"]["id"]
        auth = bearer(tokens)
        rename = {"name": "Renamed"}

        async with holding(app.url, 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', user_id):
            blocked = await answered(app.client.patch(ME, headers=auth, json=rename), timeout + 5)
            unaffected = await answered(app.client.get(ME, headers=auth), timeout + 5)
        async with holding(app.url, 'LOCK TABLE "user" IN ACCESS EXCLUSIVE MODE'):
            blocked_read = await answered(app.client.get(ME, headers=auth), timeout + 5)

        assert_unavailable(blocked)
        assert unaffected.status_code == 200, unaffected.text
        assert_unavailable(blocked_read)
        await eventually(lambda: app_is_idle(app), SETTLE, "the pool getting idle")
        # Every pooled connection still works.
        renamed = await asyncio.gather(
            *(app.client.patch(ME, headers=auth, json=rename) for _ in range(4))
        )
        assert [r.status_code for r in renamed] == [200] * 4, [r.text for r in renamed]
        assert (await app.client.get(ME, headers=auth)).json()["name"] == "Renamed"


# -- the pool --------------------------------------------------------------------------------

SMALL_POOL = {"db_pool_size": 2, "db_max_overflow": 0, "db_statement_timeout": 20}


async def hold_the_pool(app: Proxied, tokens: dict[str, Any], count: int) -> list[Any]:
    """`count` requests of the caller, each stuck on its row lock holding a connection
    (the caller's row must be locked already); returns their tasks once they wait."""
    tasks = [
        asyncio.create_task(
            app.client.patch(ME, headers=bearer(tokens), json={"name": f"Held {n}"})
        )
        for n in range(count)
    ]
    held = min(count, SMALL_POOL["db_pool_size"])
    await eventually(lambda: _waiting(app, held), 10, f"{held} requests holding connections")
    return tasks


async def _waiting(app: Proxied, count: int) -> bool:
    return await waiting_on_locks(app.url) == count


async def test_an_exhausted_pool_answers_503_fast_and_recovers(
    proxied_app: ProxiedFactory,
) -> None:
    async with proxied_app(**SMALL_POOL) as app:
        ann = await signed_up(app.client, "ann@example.com")
        bob = await signed_up(app.client, "bob@example.com")

        async with holding(
            app.url, 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', ann["user"]["id"]
        ):
            held = await hold_the_pool(app, ann, 2)
            assert app.pool.checkedout() == 2
            starved = await answered(
                app.client.get(ME, headers=bearer(bob)), FAST_FAILURE["db_pool_timeout"] + 2
            )
            starved_write = await answered(
                app.client.patch(ME, headers=bearer(bob), json={"name": "Bobby"}),
                FAST_FAILURE["db_pool_timeout"] + 2,
            )
            ready = await answered(app.client.get(READY), FAST_FAILURE["ready_timeout"] + 2)
        finished = await asyncio.gather(*held)

        assert_unavailable(starved)
        assert_unavailable(starved_write)
        assert_problem(ready, 503, "core.not_ready")
        assert [r.status_code for r in finished] == [200, 200], [r.text for r in finished]
        await eventually(lambda: app_is_idle(app), SETTLE, "the pool getting idle")
        after = await app.client.get(ME, headers=bearer(bob))
        assert (after.status_code, after.json()["name"]) == (200, "Racer")
        assert (await app.client.get(READY)).status_code == 200


async def test_clients_giving_up_mid_request_leave_the_pool_idle_and_nothing_written(
    proxied_app: ProxiedFactory,
) -> None:
    """Requests abandoned while their statement waits on a lock (and others waiting for a
    connection): over ASGI the client's task is the request's, so cancelling it cancels
    the app mid-query, the harshest way a request can end. Every connection must come
    back, no transaction may linger on the server, and nothing of theirs is written."""
    async with proxied_app(**SMALL_POOL) as app:
        ann = await signed_up(app.client, "ann@example.com")
        async with holding(
            app.url, 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', ann["user"]["id"]
        ):
            abandoned = await hold_the_pool(app, ann, 4)  # two hold connections, two queue
            for task in abandoned:
                task.cancel()
            await asyncio.gather(*abandoned, return_exceptions=True)

        await eventually(lambda: app_is_idle(app), SETTLE, "the pool getting idle")
        assert len(await app_backends(app.url)) <= SMALL_POOL["db_pool_size"]
        assert (await app.client.get(ME, headers=bearer(ann))).json()["name"] == "Racer"
        renamed = await asyncio.gather(
            *(app.client.patch(ME, headers=bearer(ann), json={"name": "Ann"}) for _ in range(4))
        )
        assert [r.status_code for r in renamed] == [200] * 4, [r.text for r in renamed]


# -- a deadlock --------------------------------------------------------------------------------


async def test_a_deadlock_victim_gets_a_retryable_503_not_a_500(
    proxied_app: ProxiedFactory,
) -> None:
    """Stops a 500 for a transaction PostgreSQL rolled back to break a deadlock (SQLSTATE
    40P01; a serialization failure, 40001, is the same kind): the request lost a race and
    retrying it succeeds, so the client is told to retry. Made deterministic: another
    client holds the second admin's row, the app's demotion locks the admins in id order
    and waits on it, then the other client asks for the first admin's row. The other
    client waits 10 s before checking for deadlocks, so the app's statement is the one
    PostgreSQL cancels (its server default is 1 s)."""
    async with proxied_app(db_statement_timeout=20) as app:
        first, second, target = [
            await signed_up(app.client, f"{name}@example.com") for name in ("a1", "a2", "t")
        ]
        ids = [first["user"]["id"], second["user"]["id"]]
        assert ids == sorted(ids)
        async with pg_connection(app.url) as other:
            await other.execute(
                "UPDATE \"user\" SET role = 'admin' WHERE id = ANY($1::text[])", ids
            )
            async with other.transaction():
                await other.execute("SET LOCAL deadlock_timeout = '10s'")
                await other.execute('SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', ids[1])
                demotion = asyncio.create_task(
                    app.client.patch(
                        f"/api/v1/users/{target['user']['id']}",
                        headers=bearer(first),
                        json={"role": "user"},
                    )
                )
                await eventually(lambda: _waiting(app, 1), 10, "the demotion waiting")
                await other.execute('SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', ids[0])
                response = await answered(demotion, 15)

        assert_problem(response, 503, "core.database_busy")
        assert int(response.headers["retry-after"]) > 0
        retried = await app.client.patch(
            f"/api/v1/users/{target['user']['id']}", headers=bearer(first), json={"role": "user"}
        )
        assert retried.status_code == 200, retried.text
