"""Failed-login throttling: password guessing stops per account and per client IP, without
revealing which accounts exist and without locking owners out for longer than a window.

Set COURTYARD_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15) to run the shared-storage
cases against Redis too; an unreachable server then fails them, it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy.engine import make_url

from plugins.auth.passwords import PasswordHasherService
from tests.plugins.auth.conftest import (
    AUTH,
    NEW_PASSWORD,
    PASSWORD,
    AuthApp,
    AuthAppFactory,
    hasher_of,
)
from tests.support.databases import execute, kill_app_connections
from tests.support.problems import assert_problem
from tests.support.statements import sent_statements

REDIS_ENV = "COURTYARD_TEST_REDIS_URL"
REDIS_URL = os.environ.get(REDIS_ENV)
# The Redis cases exist only when a server is configured.
STORAGES = ["memory", "redis"] if REDIS_URL else ["memory"]
ATTACKER_IP = "203.0.113.7"
OWNER_IP = "198.51.100.9"
CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


# Helpers


def storage_url(kind: str) -> str:
    if kind == "memory":
        return "memory://"
    assert REDIS_URL, f"{REDIS_ENV} is not set"
    return REDIS_URL


async def fresh_counters(auth: AuthApp) -> None:
    """Start from empty counters (a shared Redis keeps them between runs)."""
    windows = auth.container.rate_limits()
    assert await windows.check(), "the rate-limit storage cannot be reached"
    await windows.storage.reset()


def unique_email(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex}@example.com"


def without_request_identity(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"instance", "request_id"}}


def assert_throttled(response: httpx.Response, *, window: int = 60) -> dict[str, Any]:
    """A 429 `auth.too_many_attempts` telling the client, in whole seconds, when to retry."""
    body = assert_problem(response, 429, "auth.too_many_attempts")
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, response.headers
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= window, retry_after
    return without_request_identity(body)


async def fail_login(auth: AuthApp, email: str, client: httpx.AsyncClient | None = None) -> None:
    response = await auth.login(email, NEW_PASSWORD, client=client)
    assert_problem(response, 401, "auth.invalid_credentials")


async def token_form(auth: AuthApp, email: str, password: str) -> httpx.Response:
    return await auth.client.post(f"{AUTH}/token", data={"username": email, "password": password})


class CountingHasher(PasswordHasherService):
    """The real hasher, counting argon2 verifications (the dummy one included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verifications = 0

    def _verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return super()._verify(password_hash, password)


class HeldVerifications(PasswordHasherService):
    """The real hasher, whose verifications all wait for `release`: many guesses in flight
    at once, as an attacker's parallel requests would be."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = 0
        self.release = asyncio.Event()

    async def verify(self, password_hash: str, password: str) -> bool:
        self.held += 1
        await self.release.wait()
        return await super().verify(password_hash, password)


# Per account


@pytest.mark.parametrize("storage", STORAGES)
async def test_failures_on_an_account_stop_further_attempts(
    auth_app: AuthAppFactory, storage: str
) -> None:
    """Stops online password guessing against one account: after the allowed failures even
    the right password gets 429, however the email's case is varied. An unknown email is
    throttled identically, so the limiter does not tell which emails have accounts."""
    async with auth_app(
        login_limit_per_account="3/minute", rate_limit_storage=storage_url(storage)
    ) as auth:
        await fresh_counters(auth)
        known, unknown = unique_email("ann"), unique_email("nobody")
        await auth.signup(known)
        for email in (known, unknown):
            for spelling in (email, email.upper(), email.capitalize()):  # one account
                await fail_login(auth, spelling)

        known_refused = await auth.login(known, PASSWORD)  # the right password
        unknown_refused = await auth.login(unknown, PASSWORD)
        stored = await auth.rows("SELECT count(*) FROM auth_session")

    assert assert_throttled(known_refused) == assert_throttled(unknown_refused)
    assert stored == [(1,)]  # the sign-up's session only: the 429 signed nobody in


async def test_a_throttled_attempt_checks_no_password(auth_app: AuthAppFactory) -> None:
    """Stops the limiter being an oracle (a right guess answering differently) and argon2
    work being spent on a caller who is already refused."""
    async with auth_app(login_limit_per_account="2/minute") as auth:
        await auth.signup("ann@example.com")
        for _ in range(2):
            await fail_login(auth, "ann@example.com")
        with hasher_of(auth, CountingHasher) as hasher:
            right = await auth.login("ann@example.com", PASSWORD)
            wrong = await auth.login("ann@example.com", NEW_PASSWORD)

            assert hasher.verifications == 0

    assert assert_throttled(right) == assert_throttled(wrong)


async def test_successful_logins_never_count_against_the_account(
    auth_app: AuthAppFactory,
) -> None:
    """Stops an owner who signs in often (several devices, scripts) being locked out: a
    success clears the account's count, so only failures add up to its limit."""
    async with auth_app(login_limit_per_account="2/minute") as auth:
        await auth.signup("ann@example.com")
        await fail_login(auth, "ann@example.com")
        for _ in range(5):
            response = await auth.login("ann@example.com")
            assert response.status_code == 200, response.text
        for _ in range(2):
            await fail_login(auth, "ann@example.com")

        assert_throttled(await auth.login("ann@example.com"))


async def test_every_attempt_counts_against_the_ip(auth_app: AuthAppFactory) -> None:
    """Stops an attacker refunding their IP's count by signing in to an account of their
    own between guesses: the (generous) per-IP limit counts successes too."""
    async with auth_app(login_limit_per_ip="3/minute") as auth:
        await auth.signup("ann@example.com")
        for _ in range(3):
            response = await auth.login("ann@example.com")
            assert response.status_code == 200, response.text

        assert_throttled(await auth.login("ann@example.com"))
        other_ip = auth.client_from(OWNER_IP)
        async with other_ip:
            response = await auth.login("ann@example.com", client=other_ip)
        assert response.status_code == 200, response.text


async def test_a_lock_out_ends_with_its_window(auth_app: AuthAppFactory) -> None:
    """Stops a denial of service against an account: an attacker's failures lock its owner
    out for one window at most, and honouring Retry-After is enough to get back in."""
    async with auth_app(login_limit_per_account="2 per 2 seconds") as auth:
        await auth.signup("ann@example.com")
        attacker, owner = auth.client_from(ATTACKER_IP), auth.client_from(OWNER_IP)
        async with attacker, owner:
            for _ in range(2):
                await fail_login(auth, "ann@example.com", client=attacker)
            locked_out = await auth.login("ann@example.com", client=owner)
            assert_throttled(locked_out, window=2)

            await asyncio.sleep(int(locked_out.headers["retry-after"]))
            back_in = await auth.login("ann@example.com", client=owner)

    assert back_in.status_code == 200, back_in.text


async def test_the_token_form_shares_the_login_limit(auth_app: AuthAppFactory) -> None:
    """Stops `/token` being a second door that dodges the limit: failures on either
    endpoint count against the same account, and both refuse once it is reached."""
    async with auth_app(login_limit_per_account="2/minute") as auth:
        await auth.signup("ann@example.com")
        failed = await token_form(auth, "ann@example.com", NEW_PASSWORD)
        await fail_login(auth, "ann@example.com")

        via_token = await token_form(auth, "ann@example.com", PASSWORD)
        via_login = await auth.login("ann@example.com", PASSWORD)

    assert assert_problem(failed, 400, "auth.invalid_credentials")["error"] == "invalid_grant"
    assert assert_throttled(via_token) == assert_throttled(via_login)


async def test_parallel_guesses_cannot_outrun_the_limit(auth_app: AuthAppFactory) -> None:
    """Stops a limiter bypass by concurrency: guesses sent at once must not all be checked
    before any failure is counted; with 3 failures allowed, at most 3 passwords are tried."""
    async with auth_app(login_limit_per_account="3/minute") as auth:
        await auth.signup("ann@example.com")
        with hasher_of(auth, HeldVerifications) as hasher:
            guesses = [
                asyncio.create_task(auth.login("ann@example.com", f"guess number {n}"))
                for n in range(10)
            ]
            # Until every guess is answered or held inside argon2 (a bound, not a timing).
            for _ in range(1000):
                if sum(g.done() for g in guesses) + hasher.held == len(guesses):
                    break
                await asyncio.sleep(0.01)
            tried = hasher.held
            hasher.release.set()
            responses = await asyncio.gather(*guesses)

    statuses = sorted(r.status_code for r in responses)
    assert tried <= 3, f"{tried} passwords were tried; answers {statuses}"
    assert statuses == [401] * 3 + [429] * 7, statuses


# Per IP


async def test_failures_from_one_ip_stop_it_across_accounts(auth_app: AuthAppFactory) -> None:
    """Stops credential stuffing / password spraying (one guess on each of many accounts,
    under every per-account limit); other clients are not affected."""
    async with auth_app(login_limit_per_ip="4/minute") as auth:
        await auth.signup("ann@example.com")
        attacker, other = auth.client_from(ATTACKER_IP), auth.client_from(OWNER_IP)
        async with attacker, other:
            for n in range(4):
                await fail_login(auth, f"victim{n}@example.com", client=attacker)

            next_account = await auth.login("victim4@example.com", client=attacker)
            right_password = await auth.login("ann@example.com", client=attacker)
            elsewhere = await auth.login("ann@example.com", client=other)

    assert assert_throttled(next_account) == assert_throttled(right_password)
    assert elsewhere.status_code == 200, elsewhere.text


# Shared storage


@pytest.mark.parametrize("storage", STORAGES)
async def test_instances_share_counts_through_redis(auth_app: AuthAppFactory, storage: str) -> None:
    """Stops an attacker multiplying the limit by the number of instances behind a load
    balancer: with Redis, failures on instance A throttle the account on instance B.
    memory:// counts per instance, as documented, which is why it is for one instance."""
    settings = {"login_limit_per_account": "3/minute", "rate_limit_storage": storage_url(storage)}
    async with auth_app(**settings) as a, auth_app(**settings) as b:  # one database
        await fresh_counters(a)
        email = unique_email("ann")
        await a.signup(email)
        for _ in range(3):
            await fail_login(a, email)

        on_b = await b.login(email, PASSWORD)

    if storage == "redis":
        assert_throttled(on_b)
    else:
        assert on_b.status_code == 200, on_b.text


async def test_an_unreachable_storage_fails_closed_and_shows_in_readiness(
    auth_app: AuthAppFactory,
) -> None:
    """Stops unthrottled guessing while Redis is down (sign-in answers 503, never lets the
    attempt through, never a 500) and tells the orchestrator which dependency is failing,
    as degraded: the instance stays in rotation (every instance shares that Redis, and
    all but sign-in still serves)."""
    async with auth_app(rate_limit_storage=CLOSED_REDIS) as auth:
        await auth.signup("ann@example.com")
        ready = await auth.client.get("/health/ready")
        login = await auth.login("ann@example.com")
        token = await token_form(auth, "ann@example.com", PASSWORD)

    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded", body
    assert body["checks"]["auth.rate_limits"] == (
        "degraded: the rate-limit storage cannot be reached, sign-ins answer 503"
    ), body
    assert body["checks"]["database"] == "ok", body
    for response in (login, token):
        assert_problem(response, 503, "auth.rate_limit_unavailable")
        retry_after = response.headers.get("retry-after", "")
        assert retry_after.isdigit(), response.headers
        assert int(retry_after) >= 1


# An outage


@asynccontextmanager
async def database_gone(auth: AuthApp, database_url: str) -> AsyncIterator[None]:
    """The app's database cannot be reached until the block ends, as in an outage: the
    app's pooled connections are gone, and on SQLite a folder stands where the file was
    ("unable to open database file"), on PostgreSQL the database is renamed ("database does
    not exist" to every new connection)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        await auth.client.app.state.database.write_engine.dispose()  # type: ignore[attr-defined]
        path = anyio.Path(str(url.database))
        aside = path.with_name(path.name + ".aside")
        await path.rename(aside)
        await path.mkdir()
        try:
            yield
        finally:
            await path.rmdir()
            await aside.rename(path)
        return
    server = url.set(database="postgres").render_as_string(hide_password=False)
    name, gone = str(url.database), f"{url.database}_gone"
    await kill_app_connections(database_url)
    await execute(server, f'ALTER DATABASE "{name}" RENAME TO "{gone}"')
    try:
        yield
    finally:
        await execute(server, f'ALTER DATABASE "{gone}" RENAME TO "{name}"')


async def test_sign_ins_answered_503_in_an_outage_count_for_nothing(
    auth_app: AuthAppFactory, database_url: str
) -> None:
    """Stops a database outage locking users out afterwards: sign-ins that end in 503 must
    not count toward either limit, so the right password works the moment the database is
    back (before, it got 429 for the rest of the window)."""
    async with auth_app(login_limit_per_account="2/minute", login_limit_per_ip="3/minute") as auth:
        await auth.signup("ann@example.com")

        async with database_gone(auth, database_url):
            during = [await auth.login("ann@example.com") for _ in range(4)]
        after = await auth.login("ann@example.com")

    for response in during:
        assert_problem(response, 503, "core.database_unavailable")
    assert after.status_code == 200, after.text


async def test_a_throttled_sign_in_costs_no_database_work(auth_app: AuthAppFactory) -> None:
    """Stops a caller far over its limit keeping the pool busy (and timing account reads for
    free): once the account is at its limit, a sign-in is refused before any statement, for
    a known and an unknown email alike."""
    async with auth_app(login_limit_per_account="1/minute") as auth:
        await auth.signup("ann@example.com")
        await fail_login(auth, "ann@example.com")
        await fail_login(auth, "nobody@example.com")
        engine = auth.client.app.state.database.write_engine  # type: ignore[attr-defined]

        async with sent_statements(engine) as seen:
            known = await auth.login("ann@example.com")
            unknown = await auth.login("nobody@example.com")

    assert assert_throttled(known) == assert_throttled(unknown)
    assert seen == []
