"""Refresh tokens over HTTP: rotation, replay detection, races, logout and session limits.

Every test names the attack or failure it stops. Refresh tokens are bearer secrets that
live for weeks, so the properties proved here are what keeps a stolen one from being
useful: it works once, only its hash is stored, a second use ends the session, and the
session ends for good at its absolute expiry, on logout, or when the account goes.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.plugins.auth.conftest import AUTH, AuthApp, AuthAppFactory
from tests.support.problems import assert_problem

TOKEN_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}
AUTH_TABLES = ("auth_credential", "auth_session", "auth_refresh_token")


def session_of(tokens: dict[str, Any]) -> str:
    """The session id (`sid`) an access token names; read, not verified (the app does that)."""
    sid: str = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    return sid


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def refresh_row(auth: AuthApp, token: str) -> dict[str, Any]:
    """The `auth_refresh_token` row of a refresh token, found by its hash."""
    [row] = await auth.rows(
        "SELECT id, session_id, token_hash, used_at, replaced_by FROM auth_refresh_token "
        "WHERE token_hash = :h",
        h=sha256(token),
    )
    return dict(zip(("id", "session_id", "token_hash", "used_at", "replaced_by"), row, strict=True))


async def revoked_at(auth: AuthApp, session_id: str) -> Any:
    [(value,)] = await auth.rows("SELECT revoked_at FROM auth_session WHERE id = :i", i=session_id)
    return value


def assert_invalid_refresh(response: httpx.Response) -> None:
    assert_problem(response, 401, "auth.invalid_refresh_token")


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401, "core.unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def refreshed(auth: AuthApp, refresh_token: str) -> dict[str, Any]:
    """The new pair for `refresh_token`, asserting the 200."""
    response = await auth.refresh(refresh_token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Rotation


async def test_refresh_rotates_the_pair_and_spends_the_old_token(auth: AuthApp) -> None:
    """Stops a refresh token from being a long-lived reusable credential: each refresh
    hands out a new pair, and the database records the old token as spent and which
    token replaced it (the chain theft detection follows)."""
    signed_in = await auth.signup("rot@example.com")

    response = await auth.refresh(signed_in["refresh_token"])

    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == TOKEN_KEYS
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    assert pair["access_token"] != signed_in["access_token"]
    assert pair["refresh_token"] != signed_in["refresh_token"]
    assert session_of(pair) == session_of(signed_in)  # the same session, kept alive
    me = await auth.me(pair)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "rot@example.com"

    old = await refresh_row(auth, signed_in["refresh_token"])
    new = await refresh_row(auth, pair["refresh_token"])
    assert old["used_at"] is not None
    assert old["replaced_by"] == new["id"]
    assert new["used_at"] is None
    assert new["replaced_by"] is None
    assert old["session_id"] == new["session_id"] == session_of(pair)


async def test_refresh_tokens_are_stored_only_as_their_sha256(auth: AuthApp) -> None:
    """Stops a database leak (backup, replica, SQL injection elsewhere) from handing out
    working refresh tokens: only SHA-256 hex digests are stored, never the token."""
    signed_in = await auth.signup("hash@example.com")
    pair = await refreshed(auth, signed_in["refresh_token"])
    secrets = [signed_in["refresh_token"], pair["refresh_token"]]

    stored = {row[0] for row in await auth.rows("SELECT token_hash FROM auth_refresh_token")}
    assert stored == {sha256(token) for token in secrets}

    for table in AUTH_TABLES:
        for row in await auth.rows(f"SELECT * FROM {table}"):
            for value in row:
                for token in secrets:
                    assert token not in str(value), (table, row)


# Replay: a stolen token used after its owner (or the owner after the thief)


async def spent_long_ago(auth: AuthApp, token: str, seconds: float = 10) -> None:
    """Move a spent token's `used_at` back, as if the replay came later than the grace
    (`refresh_reuse_grace`, 2 s by default) that covers two tabs racing on SQLite."""
    await auth.execute(
        "UPDATE auth_refresh_token SET used_at = :t WHERE token_hash = :h",
        t=datetime.now(UTC) - timedelta(seconds=seconds),
        h=sha256(token),
    )


async def test_a_replayed_refresh_token_revokes_its_whole_session(auth: AuthApp) -> None:
    """Stops refresh-token theft (RFC 9700 §4.14.2): when a spent token comes back, one of
    its two holders is a thief, so the whole session ends — the successor pair of
    whichever party refreshed first stops working, access token included, at once.
    The user's other sessions (other devices) are not punished."""
    first = await auth.signup("replay@example.com")
    other_device = (await auth.login("replay@example.com")).json()
    a = first["refresh_token"]
    b = await refreshed(auth, a)
    assert (await auth.me(b)).status_code == 200
    await spent_long_ago(auth, a)

    assert_invalid_refresh(await auth.refresh(a))

    assert_invalid_refresh(await auth.refresh(b["refresh_token"]))
    assert_unauthorized(await auth.me(b))
    assert await revoked_at(auth, session_of(b)) is not None
    assert await revoked_at(auth, session_of(other_device)) is None
    assert (await auth.me(other_device)).status_code == 200
    other_pair = await refreshed(auth, other_device["refresh_token"])
    assert (await auth.me(other_pair)).status_code == 200


async def test_without_a_grace_an_immediate_replay_revokes(auth_app: AuthAppFactory) -> None:
    """Stops `refresh_reuse_grace` from being ignored: set to 0, a replay a moment after
    the first use is treated as theft at once (no window for a fast thief)."""
    async with auth_app(refresh_reuse_grace=0) as app:
        signed_in = await app.signup("nograce@example.com")
        pair = await refreshed(app, signed_in["refresh_token"])

        assert_invalid_refresh(await app.refresh(signed_in["refresh_token"]))

        assert_invalid_refresh(await app.refresh(pair["refresh_token"]))
        assert_unauthorized(await app.me(pair))
        assert await revoked_at(app, session_of(pair)) is not None


async def test_a_replay_within_the_grace_gets_nothing_but_keeps_the_session(
    auth_app: AuthAppFactory,
) -> None:
    """Stops the documented grace from becoming a hole: a spent token presented again
    within `refresh_reuse_grace` (a second tab that raced the first) still yields no
    tokens; only the revocation is spared, so the honest tab's new pair keeps working.
    (A long grace here, so the test does not depend on how fast it runs.)"""
    async with auth_app(refresh_reuse_grace=60) as app:
        signed_in = await app.signup("grace@example.com")
        pair = await refreshed(app, signed_in["refresh_token"])

        assert_invalid_refresh(await app.refresh(signed_in["refresh_token"]))

        assert await revoked_at(app, session_of(pair)) is None
        assert (await app.me(pair)).status_code == 200
        assert (await app.refresh(pair["refresh_token"])).status_code == 200
        [(count,)] = await app.rows("SELECT COUNT(*) FROM auth_refresh_token")
        assert count == 3  # the signup's, the pair's and its successor: the replay minted none


async def test_concurrent_refreshes_with_one_token_let_exactly_one_win(auth: AuthApp) -> None:
    """Stops a race from minting two live pairs out of one refresh token (a copied token
    used at the same moment as the original would otherwise go unnoticed), and shows the
    loser of an honest race (two tabs refreshing at once) does not end the session: the
    winner's pair keeps working. Repeated so that the requests really overlap."""
    signed_in = await auth.signup("race@example.com")
    token = signed_in["refresh_token"]

    for round_ in range(5):
        responses = await asyncio.gather(auth.refresh(token), auth.refresh(token))

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 401], (round_, [r.text for r in responses])
        [winner] = [r for r in responses if r.status_code == 200]
        [loser] = [r for r in responses if r.status_code == 401]
        assert_invalid_refresh(loser)
        pair = winner.json()
        assert (await auth.me(pair)).status_code == 200, round_
        assert await revoked_at(auth, session_of(pair)) is None, round_
        token = pair["refresh_token"]  # still usable: the next round races with it

    spent = await auth.rows("SELECT used_at FROM auth_refresh_token WHERE used_at IS NOT NULL")
    assert len(spent) == 5  # one winner per round, nothing else spent
    [(count,)] = await auth.rows("SELECT COUNT(*) FROM auth_refresh_token")
    assert count == 6  # the signup's and one successor per round: no loser minted a token


# Tokens that were never valid refresh tokens


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "x" * 256,
        "' OR 1=1 --",
        "8J-Ykg0K6v3x_1H0pVZ9a4sS0m1qkq8m4F9l0GmYw1E",  # the right shape, never issued
        "\u00e9\U0001f600",
    ],
    ids=["garbage", "longest", "sql", "well-formed", "non-ascii"],
)
async def test_a_refresh_token_never_issued_is_refused(auth: AuthApp, token: str) -> None:
    """Stops guessing or forging refresh tokens: anything not issued is the same 401."""
    await auth.signup("guess@example.com")  # there are live tokens to collide with

    assert_invalid_refresh(await auth.refresh(token))


async def test_an_empty_or_oversized_refresh_token_is_a_validation_error(auth: AuthApp) -> None:
    """Stops malformed bodies (an empty token, an absurdly long one) from reaching the
    token lookup at all: 422 naming the field, not a 401 or a 500."""
    for value in ["", "x" * 10_000]:
        body = assert_problem(await auth.refresh(value), 422, "core.validation_error")
        assert [e["field"] for e in body["errors"]] == ["refresh_token"], body
    missing = await auth.client.post(f"{AUTH}/refresh", json={})
    assert_problem(missing, 422, "core.validation_error")


async def test_an_access_token_is_not_a_refresh_token(auth: AuthApp) -> None:
    """Stops token-type confusion: a short-lived access token (which leaks more easily:
    it travels in every request) cannot be traded for a new pair. The answer is the
    documented 401 for a token that is not a valid refresh token, like any other."""
    signed_in = await auth.signup("confuse@example.com")
    # An HS256 access token is ~360 characters (RS256 ~730): a real token, not an absurd body.

    assert_invalid_refresh(await auth.refresh(signed_in["access_token"]))
    assert (await auth.me(signed_in)).status_code == 200  # and nothing was revoked


# Sessions that have ended


async def test_refresh_after_the_session_expired_is_refused(auth: AuthApp) -> None:
    """Stops a session from being kept alive forever by refreshing: past its absolute
    expiry its refresh token is refused even though it was never used."""
    signed_in = await auth.signup("old@example.com")
    await auth.execute(
        "UPDATE auth_session SET expires_at = :t", t=datetime.now(UTC) - timedelta(seconds=1)
    )

    assert_invalid_refresh(await auth.refresh(signed_in["refresh_token"]))
    [(used_at,)] = await auth.rows("SELECT used_at FROM auth_refresh_token")
    assert used_at is None  # refused before anything was spent


async def test_an_access_token_never_outlives_its_session(auth: AuthApp) -> None:
    """Stops a session's absolute expiry from being stretched by one more access-token
    lifetime: a pair refreshed a minute before the session ends expires with it."""
    signed_in = await auth.signup("late@example.com")
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    await auth.execute("UPDATE auth_session SET expires_at = :t", t=ends)

    response = await auth.refresh(signed_in["refresh_token"])

    assert response.status_code == 200, response.text
    pair = response.json()
    assert 0 < pair["expires_in"] <= 60
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["exp"] == int(ends.timestamp())


@pytest.mark.parametrize("change", ["delete", "deactivate"])
async def test_refresh_and_access_stop_when_the_account_goes(auth: AuthApp, change: str) -> None:
    """Stops a deleted or deactivated account from staying signed in: its refresh token
    no longer yields tokens and its access token stops working on the next request, not
    when it expires."""
    signed_in = await auth.signup(f"{change}@example.com")
    user_id = signed_in["user"]["id"]
    assert (await auth.me(signed_in)).status_code == 200

    if change == "delete":
        await auth.user_service(lambda s: s.delete(user_id))
    else:
        await auth.user_service(lambda s: s.set_active(user_id, False))

    assert_invalid_refresh(await auth.refresh(signed_in["refresh_token"]))
    assert_unauthorized(await auth.me(signed_in))
    assert await revoked_at(auth, session_of(signed_in)) is not None


async def test_refresh_of_a_reactivated_account_stays_refused(auth: AuthApp) -> None:
    """Stops reactivation from resurrecting the sessions a deactivation ended (someone
    locked out for cause must sign in again, not reuse the old refresh token)."""
    signed_in = await auth.signup("back@example.com")
    user_id = signed_in["user"]["id"]
    await auth.user_service(lambda s: s.set_active(user_id, False))
    await auth.user_service(lambda s: s.set_active(user_id, True))

    assert_invalid_refresh(await auth.refresh(signed_in["refresh_token"]))
    assert_unauthorized(await auth.me(signed_in))
    assert (await auth.login("back@example.com")).status_code == 200


# Logout


async def test_logout_ends_the_session_at_once(auth: AuthApp) -> None:
    """Stops a signed-out session from living on: after logout its refresh token is
    refused and its access token stops working immediately on this instance (not only
    when it expires), while the user's other sessions continue."""
    signed_in = await auth.signup("bye@example.com")
    other = (await auth.login("bye@example.com")).json()
    assert (await auth.me(signed_in)).status_code == 200

    response = await auth.logout(signed_in["refresh_token"])

    assert response.status_code == 204
    assert response.content == b""
    assert_invalid_refresh(await auth.refresh(signed_in["refresh_token"]))
    assert_unauthorized(await auth.me(signed_in))
    assert await revoked_at(auth, session_of(signed_in)) is not None
    assert (await auth.me(other)).status_code == 200
    assert await revoked_at(auth, session_of(other)) is None


async def test_logout_with_a_spent_refresh_token_still_ends_the_session(auth: AuthApp) -> None:
    """Stops a client that logs out with a stale refresh token (e.g. another tab already
    rotated it) from leaving the session open: the session it belongs to ends anyway."""
    signed_in = await auth.signup("stale@example.com")
    pair = await refreshed(auth, signed_in["refresh_token"])

    assert (await auth.logout(signed_in["refresh_token"])).status_code == 204

    assert_invalid_refresh(await auth.refresh(pair["refresh_token"]))
    assert_unauthorized(await auth.me(pair))


async def test_logout_says_nothing_about_a_token(auth: AuthApp) -> None:
    """Stops logout from being an oracle for which tokens are valid (RFC 7009 §2.2): an
    unknown token and a repeated logout both answer 204, like a real one."""
    signed_in = await auth.signup("oracle@example.com")

    assert (await auth.logout("never-issued-token")).status_code == 204
    assert (await auth.logout(signed_in["refresh_token"])).status_code == 204
    again = await auth.logout(signed_in["refresh_token"])
    assert again.status_code == 204
    assert again.content == b""
    [(count,)] = await auth.rows("SELECT COUNT(*) FROM auth_session WHERE revoked_at IS NULL")
    assert count == 0


# Session lifetime


async def test_the_session_lifetime_setting_sets_the_absolute_expiry(
    auth_app: AuthAppFactory,
) -> None:
    """Stops the configured absolute session lifetime from being ignored (sessions that
    outlive policy), and shows a refresh does not extend it (expiry is absolute)."""
    async with auth_app(session_lifetime=3600) as app:
        signed_in = await app.signup("life@example.com")
        [(created_at, expires_at)] = await app.rows(
            "SELECT created_at, expires_at FROM auth_session"
        )
        lifetime = _aware(expires_at) - _aware(created_at)
        assert abs(lifetime - timedelta(hours=1)) < timedelta(seconds=1), lifetime

        await refreshed(app, signed_in["refresh_token"])

        [(expires_after_refresh,)] = await app.rows("SELECT expires_at FROM auth_session")
        assert _aware(expires_after_refresh) == _aware(expires_at)


def _aware(value: Any) -> datetime:
    """A timestamp read with plain SQL (SQLite keeps naive UTC, maybe as text) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
