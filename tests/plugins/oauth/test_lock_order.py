"""The locks a provider's first sign-in into an existing account takes, on PostgreSQL.

A password sign-in locks the account's credential row, then takes the account row (FOR
SHARE) in one transaction. A provider's first sign-in into an existing account with an
unverified email links the identity, marks the email verified (an UPDATE of the account
row) and opens a session (the credential lock) in one transaction too: it must take the
credential lock first, or the two, at the same moment, deadlock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.plugins.auth.conftest import PASSWORD
from tests.plugins.oauth.conftest import Browser
from tests.plugins.oauth.idp import Account
from tests.support.databases import backends, fresh_database

pytestmark = pytest.mark.postgres

# Generous bounds: the point is that things happen at all, not how fast.
PATIENCE = 15.0
POLL = 0.01


def raw_dsn(database_url: str) -> str:
    """The app's database as a plain asyncpg DSN."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def until_the_app_waits_for(
    watcher: Any, holder_pid: int, work: asyncio.Task[httpx.Response]
) -> None:
    """Return once one of the app's connections waits for a lock `holder_pid` holds; fail
    the test if `work` ends first or nothing waits within `PATIENCE`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while loop.time() < deadline:
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'courtyard'"
            " AND wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))",
            holder_pid,
        )
        if waiting:
            return
        if work.done():
            answer = work.result()
            pytest.fail(
                "the provider sign-in finished without waiting for the credential lock: "
                f"{answer.status_code} {answer.text}"
            )
        await asyncio.sleep(POLL)
    pytest.fail("the provider sign-in never waited for the account's credential lock")


async def account_row_free(probe: Any, user_id: str) -> bool:
    """Whether another transaction can lock the account's row right now (then let go)."""
    async with probe.transaction():
        try:
            await probe.execute('SELECT id FROM "user" WHERE id = $1 FOR UPDATE NOWAIT', user_id)
        except asyncpg.exceptions.LockNotAvailableError:
            return False
    return True


if "postgresql" in backends():

    @pytest.fixture
    async def database_url(tmp_path: Path) -> AsyncIterator[str]:
        """An empty PostgreSQL database (row locks are what these tests watch); replaces
        the suite's `database_url`, which also runs on SQLite."""
        async with fresh_database("postgresql", tmp_path) as url:
            yield url

    async def test_a_first_sign_in_waits_for_the_credential_before_it_touches_the_account(
        browser: Browser, database_url: str
    ) -> None:
        """Stops: the provider's first sign-in verifying the account's email (locking its
        row) before it takes the credential lock, the reverse of a password sign-in's order,
        so the two deadlock on PostgreSQL."""
        owner = await browser.auth.signup("alice@example.com")
        user_id = owner["user"]["id"]
        assert owner["user"]["email_verified"] is False
        location = await browser.returning()  # approved at the provider, not yet back

        holder = await asyncpg.connect(raw_dsn(database_url))
        probe = await asyncpg.connect(raw_dsn(database_url))
        holding = holder.transaction()
        work: asyncio.Task[httpx.Response] | None = None
        try:
            await holding.start()
            # What a password sign-in of the account holds while it reads the account.
            locked = await holder.fetch(
                "SELECT user_id FROM auth_credential WHERE user_id = $1 FOR UPDATE", user_id
            )
            assert len(locked) == 1
            work = asyncio.create_task(browser.callback(location))
            await until_the_app_waits_for(probe, holder.get_server_pid(), work)

            free = await account_row_free(probe, user_id)

            await holding.rollback()
            response = await asyncio.wait_for(work, PATIENCE)
        finally:
            if holder.is_in_transaction():
                await holding.rollback()
            if work is not None and not work.done():
                await asyncio.wait_for(work, PATIENCE)
            await holder.close()
            await probe.close()

        assert free, (
            "the provider sign-in holds the account row while it waits for the credential "
            "lock: a password sign-in holding that lock and waiting for the row deadlocks it"
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["user"]["id"] == user_id
        assert body["user"]["email_verified"] is True  # the provider vouched for it
        me = await browser.auth.me(body)
        assert me.status_code == 200, me.text
        assert me.json()["email_verified"] is True
        assert await browser.auth.rows("SELECT user_id, provider FROM oauth_identity") == [
            (user_id, "acme")
        ]

    async def test_password_and_first_provider_sign_ins_at_once_both_succeed(
        browser: Browser,
    ) -> None:
        """Stops: a password sign-in and the provider's first sign-in of the same account,
        at the same moment, ending in a deadlock (a 503 `core.database_busy`) or a 500."""
        rounds = 40
        for n in range(rounds):
            email = f"racer{n}@example.com"
            owner = await browser.auth.signup(email)
            browser.idp.account = Account(sub=f"racer-{n:04d}", email=email)
            location = await browser.returning()

            async def login(delay: float, email: str = email) -> httpx.Response:
                await asyncio.sleep(delay)  # a sweep of offsets, so the two overlap somewhere
                return await browser.auth.login(email, PASSWORD)

            password, provider = await asyncio.wait_for(
                asyncio.gather(login((n % 10) * 0.002), browser.callback(location)), PATIENCE
            )

            assert password.status_code == 200, (n, password.text)
            assert provider.status_code == 200, (n, provider.text)
            assert password.json()["user"]["id"] == owner["user"]["id"]
            assert provider.json()["user"]["id"] == owner["user"]["id"]
            assert provider.json()["user"]["email_verified"] is True
