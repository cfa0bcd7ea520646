"""Requests that overlap: each test holds one request inside its argon2 check (a real
hasher that waits for a signal) while another changes the account, then lets it finish.

Without the locks the service takes, each of these loses an owner's change or leaves a
session alive that should have ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Boolean, Table, column, table, update

from plugins.auth.models import Credential
from plugins.auth.passwords import PasswordHasherService
from tests.plugins.auth.conftest import (
    AUTH,
    NEW_PASSWORD,
    PASSWORD,
    AuthApp,
    AuthAppFactory,
    bearer,
    hasher_of,
)
from tests.support.problems import assert_problem

SAFETY_NET = 30  # seconds; a hung test fails instead of hanging, no timing is asserted
CredentialTable: Table = Credential.__table__  # type: ignore[attr-defined]
UserTable = table("user", column("id"), column("is_active", Boolean))  # the user plugin's


class FirstVerificationWaits(PasswordHasherService):
    """The real hasher; the first verification waits for `release` after setting `held`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self._first = True

    async def verify(self, password_hash: str, password: str) -> bool:
        if self._first:
            self._first = False
            self.held.set()
            await self.release.wait()
        return await super().verify(password_hash, password)


async def live_sessions(auth: AuthApp, user_id: str) -> int:
    [(count,)] = await auth.rows(
        "SELECT COUNT(*) FROM auth_session WHERE user_id = :u AND revoked_at IS NULL", u=user_id
    )
    return int(count)


async def change_password(auth: AuthApp, tokens: dict[str, Any], new: str) -> Any:
    return await auth.client.post(
        f"{AUTH}/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers=bearer(tokens),
    )


async def test_a_login_racing_a_deactivation_leaves_no_session(auth: AuthApp) -> None:
    """Stops a session surviving a deactivation: a login whose password check was under way
    when the account was deactivated must not open a session afterwards (it would come
    back to life, with a month of refresh tokens, when the account is reactivated)."""
    user_id = (await auth.signup("ann@example.com"))["user"]["id"]
    with hasher_of(auth, FirstVerificationWaits) as hasher:
        login = asyncio.create_task(auth.login("ann@example.com"))
        await asyncio.wait_for(hasher.held.wait(), SAFETY_NET)
        await auth.user_service(lambda users: users.set_active(user_id, False))
        hasher.release.set()
        response = await login

    assert_problem(response, 401, "auth.invalid_credentials")
    assert await live_sessions(auth, user_id) == 0
    await auth.user_service(lambda users: users.set_active(user_id, True))
    assert await live_sessions(auth, user_id) == 0


async def waiting_on_a_row_lock(auth: AuthApp) -> None:
    """Return once some statement of the app waits for a lock (PostgreSQL)."""
    query = "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
    while True:
        if (await auth.rows(query))[0][0]:
            return
        await asyncio.sleep(0.01)


def deactivation(user_id: str) -> Any:
    return update(UserTable).where(UserTable.c.id == user_id).values(is_active=False)


def password_change(user_id: str) -> Any:
    return (
        update(CredentialTable)
        .where(CredentialTable.c.user_id == user_id)
        .values(password_hash="$argon2id$another", changed_at=datetime.now(UTC))
    )


@pytest.mark.parametrize("change", [deactivation, password_change])
async def test_a_login_waits_for_a_change_under_way_and_is_refused(
    auth: AuthApp, change: Callable[[str], Any]
) -> None:
    """Stops a session opened from what was read before a change committed: the sign-in's
    last step runs while the account (a deactivation) or its credential (a password change)
    is being changed and not yet committed. It must wait for the change and then refuse;
    opening the session from the rows as they were read would leave a live session on a
    deactivated account, or one signed in with a password that no longer exists."""
    user_id = (await auth.signup("ann@example.com"))["user"]["id"]
    sessions = "SELECT id FROM auth_session WHERE user_id = :u ORDER BY id"
    before = await auth.rows(sessions, u=user_id)  # the one signup opened
    engine = auth.app.state.database.write_engine
    with hasher_of(auth, FirstVerificationWaits) as hasher:
        login = asyncio.create_task(auth.login("ann@example.com"))
        await asyncio.wait_for(hasher.held.wait(), SAFETY_NET)
        async with engine.begin() as transaction:
            await transaction.execute(change(user_id))
            hasher.release.set()
            if engine.dialect.name == "postgresql":
                await asyncio.wait_for(waiting_on_a_row_lock(auth), SAFETY_NET)
            else:  # SQLite: the login's transaction waits for this one's write lock
                await asyncio.sleep(0.2)
        response = await asyncio.wait_for(login, SAFETY_NET)

    assert_problem(response, 401, "auth.invalid_credentials")
    assert await auth.rows(sessions, u=user_id) == before


async def test_of_two_password_changes_at_once_the_second_is_refused(auth: AuthApp) -> None:
    """Stops a lost update: two holders of the current password (the owner, and someone who
    learnt it) change it at once; the one that commits second must be refused, not
    silently replace the other's new password while being told it succeeded."""
    owner = await auth.signup("ann@example.com")
    other = (await auth.login("ann@example.com")).json()
    with hasher_of(auth, FirstVerificationWaits) as hasher:
        held = asyncio.create_task(change_password(auth, other, "the other one's new password"))
        await asyncio.wait_for(hasher.held.wait(), SAFETY_NET)
        first = await change_password(auth, owner, NEW_PASSWORD)
        hasher.release.set()
        second = await held

    assert first.status_code == 204, first.text
    assert_problem(second, 403, "auth.wrong_password")
    assert (await auth.login("ann@example.com", NEW_PASSWORD)).status_code == 200
    refused = await auth.login("ann@example.com", "the other one's new password")
    assert_problem(refused, 401, "auth.invalid_credentials")


async def test_password_guesses_share_the_accounts_login_budget(auth_app: AuthAppFactory) -> None:
    """Stops a stolen access token doubling the guesses: current-password checks on
    `/password` and logins draw on one count per account."""
    async with auth_app(login_limit_per_account="3/minute") as auth:
        tokens = await auth.signup("ann@example.com")
        for _ in range(3):
            assert_problem(await auth.login("ann@example.com", "not the password"), 401,
                           "auth.invalid_credentials")  # fmt: skip

        throttled = await change_password(auth, tokens, NEW_PASSWORD)

    body = assert_problem(throttled, 429, "auth.too_many_attempts")
    assert body["detail"]
    assert 1 <= int(throttled.headers["retry-after"]) <= 60


async def test_logins_under_a_user_id_do_not_lock_the_owner_out(auth_app: AuthAppFactory) -> None:
    """Stops a lock-out by anyone who knows a user id: sign-in attempts with the id typed as
    the email do not count against the account's password changes."""
    async with auth_app(login_limit_per_account="3/minute") as auth:
        tokens = await auth.signup("ann@example.com")
        for _ in range(5):
            await auth.login(tokens["user"]["id"], "not the password")

        response = await change_password(auth, tokens, NEW_PASSWORD)

    assert response.status_code == 204, response.text


async def test_one_ipv6_network_is_one_client(auth_app: AuthAppFactory) -> None:
    """Stops an IPv6 host escaping the per-IP limit by taking a fresh address from its /64
    for each guess; another network is unaffected."""
    async with auth_app(login_limit_per_ip="3/minute") as auth:
        for host in range(1, 4):
            async with auth.client_from(f"2001:db8:1:2::{host}") as client:
                await auth.login(f"user{host}@example.com", "not the password", client=client)

        async with auth.client_from("2001:db8:1:2:ffff::9") as same_network:
            throttled = await auth.login("x@example.com", "guess", client=same_network)
        async with auth.client_from("2001:db8:1:3::1") as other_network:
            other = await auth.login("x@example.com", "guess", client=other_network)

    assert_problem(throttled, 429, "auth.too_many_attempts")
    assert_problem(other, 401, "auth.invalid_credentials")
