"""`/api/v1/auth/sessions`: a user sees their signed-in devices and ends the ones they distrust.

Each test names the attack or failure it stops: a stolen device that cannot be signed out, a
session list that leaks another user's devices, a revocation that leaves tokens working, or a
session id that lets one user probe or end another user's sessions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ulid import ULID

from tests.plugins.auth.conftest import (
    AUTH,
    PASSWORD,
    AuthApp,
    assert_signed_in,
    assert_signed_out,
    bearer,
)
from tests.support.problems import assert_problem

SESSIONS = f"{AUTH}/sessions"
SESSION_FIELDS = {"id", "created_at", "last_used_at", "expires_at", "user_agent", "ip", "current"}
PHONE = "CourtyardPhone/2.1 (Android 14)"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


async def login_as(
    auth: AuthApp, email: str, user_agent: str, client: httpx.AsyncClient | None = None
) -> dict[str, Any]:
    """Sign in from a device announcing `user_agent`; the token response."""
    response = await (client or auth.client).post(
        f"{AUTH}/login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_sessions(
    auth: AuthApp, tokens: dict[str, Any] | str, **params: Any
) -> dict[str, Any]:
    """The caller's session page (after checking it is a 200)."""
    response = await auth.client.get(SESSIONS, headers=bearer(tokens), params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page.keys() == {"items", "next_cursor"}
    return page


async def session_ids(auth: AuthApp, tokens: dict[str, Any]) -> list[str]:
    return [item["id"] for item in (await list_sessions(auth, tokens))["items"]]


async def revoke(auth: AuthApp, tokens: dict[str, Any], session_id: str) -> httpx.Response:
    return await auth.client.delete(f"{SESSIONS}/{session_id}", headers=bearer(tokens))


async def current_session(auth: AuthApp, tokens: dict[str, Any]) -> str:
    """The id of the session `tokens` belong to, as the list marks it."""
    [current] = [i for i in (await list_sessions(auth, tokens))["items"] if i["current"]]
    session_id: str = current["id"]
    return session_id


async def live_session_ids(auth: AuthApp, user_id: str) -> set[str]:
    """The user's sessions whose `revoked_at` is still empty, straight from the database."""
    rows = await auth.rows(
        "SELECT id FROM auth_session WHERE user_id = :user_id AND revoked_at IS NULL",
        user_id=user_id,
    )
    return {row[0] for row in rows}


def when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, value
    return moment


# -- Listing ---------------------------------------------------------------------------------


async def test_each_device_is_listed_with_its_details_and_the_callers_own_marked_current(
    auth: AuthApp,
) -> None:
    """Stops: a user unable to recognise a stranger's device among their sessions (no user
    agent, no address, no way to tell which entry is the device in their hand)."""
    signed_up = await auth.signup("ann@example.com")
    laptop = await login_as(auth, "ann@example.com", LAPTOP)
    async with auth.client_from("203.0.113.9") as elsewhere:
        phone = await login_as(auth, "ann@example.com", PHONE, client=elsewhere)

    page = await list_sessions(auth, laptop)

    items = page["items"]
    assert page["next_cursor"] is None
    assert len(items) == 3
    for item in items:
        assert item.keys() == SESSION_FIELDS, item
        assert item["id"].startswith("ses_")
        created = when(item["created_at"])
        assert when(item["last_used_at"]) == created  # never refreshed yet
        assert when(item["expires_at"]) - created == timedelta(days=30)  # the default lifetime
    # Newest first: the phone, then the laptop, then the sign-up's session.
    assert [(i["user_agent"], i["ip"]) for i in items] == [
        (PHONE, "203.0.113.9"),
        (LAPTOP, "127.0.0.1"),
        (f"python-httpx/{httpx.__version__}", "127.0.0.1"),
    ]
    assert [i["current"] for i in items] == [False, True, False]
    created_at = [when(i["created_at"]) for i in items]
    assert created_at == sorted(created_at, reverse=True)
    assert {i["id"] for i in items} == await live_session_ids(auth, signed_up["user"]["id"])

    # The same list seen from the phone marks the phone, and only it.
    from_phone = (await list_sessions(auth, phone))["items"]
    assert [i["id"] for i in from_phone] == [i["id"] for i in items]
    assert [i["current"] for i in from_phone] == [True, False, False]


async def test_a_very_long_user_agent_is_clipped_not_refused(auth: AuthApp) -> None:
    """Stops: a client sending a huge User-Agent making sign-in fail (the column holds 512)."""
    await auth.signup("ann@example.com")
    tokens = await login_as(auth, "ann@example.com", "A" * 2000)

    items = (await list_sessions(auth, tokens))["items"]

    assert items[0]["current"] is True
    assert items[0]["user_agent"] == "A" * 512


async def test_another_users_sessions_never_appear(auth: AuthApp) -> None:
    """Stops: the session list leaking other users' devices, addresses and session ids."""
    ann = await auth.signup("ann@example.com")
    bob = await auth.signup("bob@example.com")
    await login_as(auth, "bob@example.com", "Bob's browser")

    ann_items = (await list_sessions(auth, ann))["items"]
    bob_items = (await list_sessions(auth, bob))["items"]

    assert {i["id"] for i in ann_items} == await live_session_ids(auth, ann["user"]["id"])
    assert len(ann_items) == 1
    assert {i["id"] for i in bob_items} == await live_session_ids(auth, bob["user"]["id"])
    assert len(bob_items) == 2
    assert not {i["id"] for i in ann_items} & {i["id"] for i in bob_items}
    assert "Bob's browser" not in [i["user_agent"] for i in ann_items]


async def test_a_logged_out_session_is_no_longer_listed(auth: AuthApp) -> None:
    """Stops: a signed-out device still showing as signed in (the user cannot tell what is
    really open) — and shows that ending a session keeps its row as a revoked audit trail."""
    ann = await auth.signup("ann@example.com")
    laptop = await login_as(auth, "ann@example.com", LAPTOP)
    laptop_session = await current_session(auth, laptop)

    response = await auth.logout(laptop["refresh_token"])

    assert response.status_code == 204
    items = (await list_sessions(auth, ann))["items"]
    assert [i["id"] for i in items] == [await current_session(auth, ann)]
    assert laptop_session not in {i["id"] for i in items}
    revoked = await auth.rows(
        "SELECT id FROM auth_session WHERE revoked_at IS NOT NULL AND user_id = :user_id",
        user_id=ann["user"]["id"],
    )
    assert revoked == [(laptop_session,)]


async def test_limit_one_pages_walk_every_session_once_newest_first(auth: AuthApp) -> None:
    """Stops: a cursor that skips or repeats sessions, hiding a device from the user."""
    ann = await auth.signup("ann@example.com")
    for number in range(3):
        await login_as(auth, "ann@example.com", f"device {number}")
    everything = await session_ids(auth, ann)
    assert len(everything) == 4

    walked: list[str] = []
    cursor: str | None = None
    for _ in range(len(everything)):
        params: dict[str, Any] = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = await list_sessions(auth, ann, **params)
        assert len(page["items"]) == 1, page
        walked.append(page["items"][0]["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == walked[-1]

    assert cursor is None
    assert walked == everything


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="garbage-token"),
        pytest.param({"Authorization": "Basic YW5uOnB3"}, id="other-scheme"),
    ],
)
async def test_listing_requires_a_valid_access_token(
    auth: AuthApp, headers: dict[str, str]
) -> None:
    """Stops: an anonymous caller reading a user's sessions."""
    await auth.signup("ann@example.com")

    response = await auth.client.get(SESSIONS, headers=headers)

    assert_problem(response, 401, "core.unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_refresh_token_is_not_an_access_token(auth: AuthApp) -> None:
    """Stops: the long-lived refresh token being usable as a bearer token."""
    ann = await auth.signup("ann@example.com")

    response = await auth.client.get(SESSIONS, headers=bearer(ann["refresh_token"]))

    assert_problem(response, 401, "core.unauthorized")


async def test_refreshing_moves_last_used_at_forward_and_keeps_the_rest(auth: AuthApp) -> None:
    """Stops: a stale "last used" time, so a device an attacker keeps alive looks idle."""
    ann = await auth.signup("ann@example.com")
    [before] = (await list_sessions(auth, ann))["items"]
    requested_at = datetime.now(UTC)

    refreshed = await auth.refresh(ann["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    [after] = (await list_sessions(auth, refreshed.json()))["items"]
    assert after["id"] == before["id"]  # a refresh continues the session, it opens none
    assert after["current"] is True
    assert when(after["last_used_at"]) > when(before["last_used_at"])
    assert when(after["last_used_at"]) >= requested_at
    for unchanged in ("created_at", "expires_at", "user_agent", "ip"):
        assert after[unchanged] == before[unchanged], unchanged


# -- Ending one session ----------------------------------------------------------------------


async def test_ending_another_of_my_sessions_stops_its_tokens_at_once(auth: AuthApp) -> None:
    """Stops: a stolen laptop staying signed in after its owner ended its session from the
    phone — neither its refresh token nor its (still unexpired) access token may work."""
    ann = await auth.signup("ann@example.com")
    phone = await login_as(auth, "ann@example.com", PHONE)
    laptop = await login_as(auth, "ann@example.com", LAPTOP)
    laptop_session = await current_session(auth, laptop)

    response = await revoke(auth, phone, laptop_session)

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_signed_out(auth, laptop)
    # The phone, and the other session, carry on.
    phone = await assert_signed_in(auth, phone)
    await assert_signed_in(auth, ann)
    remaining = await session_ids(auth, phone)
    assert laptop_session not in remaining
    assert len(remaining) == 2
    assert laptop_session not in await live_session_ids(auth, ann["user"]["id"])


async def test_ending_my_current_session_signs_me_out(auth: AuthApp) -> None:
    """Stops: "sign out this device" leaving the device's own tokens working."""
    ann = await auth.signup("ann@example.com")
    other = await login_as(auth, "ann@example.com", LAPTOP)

    response = await revoke(auth, ann, await current_session(auth, ann))

    assert response.status_code == 204, response.text
    await assert_signed_out(auth, ann)
    await assert_signed_in(auth, other)


async def test_ending_a_session_that_already_ended_is_204_and_changes_nothing(
    auth: AuthApp,
) -> None:
    """Stops: a retried "sign out that device" (a double click, a flaky network) showing the
    user an error, or moving the recorded time of the revocation."""
    ann = await auth.signup("ann@example.com")
    laptop = await login_as(auth, "ann@example.com", LAPTOP)
    laptop_session = await current_session(auth, laptop)
    assert (await revoke(auth, ann, laptop_session)).status_code == 204
    query = "SELECT revoked_at FROM auth_session WHERE id = :session_id"
    [(revoked_at,)] = await auth.rows(query, session_id=laptop_session)

    again = await revoke(auth, ann, laptop_session)

    assert again.status_code == 204, again.text
    assert await auth.rows(query, session_id=laptop_session) == [(revoked_at,)]
    await assert_signed_out(auth, laptop)
    await assert_signed_in(auth, ann)


async def test_another_users_session_is_404_and_keeps_working(auth: AuthApp) -> None:
    """Stops: one user ending another user's sessions by id (cross-user revocation), or
    learning that a session id exists (the answer is the same as for an unknown id)."""
    ann = await auth.signup("ann@example.com")
    bob = await auth.signup("bob@example.com")
    bob_session = await current_session(auth, bob)

    response = await revoke(auth, ann, bob_session)

    body = assert_problem(response, 404, "auth.session_not_found")
    assert body["detail"] == f"Session {bob_session} not found"
    assert bob_session in await live_session_ids(auth, bob["user"]["id"])
    bob = await assert_signed_in(auth, bob)
    assert await session_ids(auth, bob) == [bob_session]
    await assert_signed_in(auth, ann)  # and the caller's own session is untouched too


@pytest.mark.parametrize(
    "session_id",
    [
        pytest.param(f"ses_{ULID()}", id="unknown-well-formed"),
        pytest.param("not-a-session", id="malformed"),
        pytest.param(f"usr_{ULID()}", id="another-prefix"),
        pytest.param(f"ses_{str(ULID()).lower()}", id="lower-case"),
        pytest.param("ses_' OR '1'='1", id="sql-ish"),
    ],
)
async def test_an_unknown_or_malformed_session_id_is_404(auth: AuthApp, session_id: str) -> None:
    """Stops: odd ids reaching the database as something else than "no such session" (a 500,
    a 422 that tells ids apart, or a query matching other rows) — and shows nothing ends."""
    ann = await auth.signup("ann@example.com")
    before = await live_session_ids(auth, ann["user"]["id"])

    response = await revoke(auth, ann, session_id)

    body = assert_problem(response, 404, "auth.session_not_found")
    assert body["detail"] == f"Session {session_id} not found"
    assert await live_session_ids(auth, ann["user"]["id"]) == before
    await assert_signed_in(auth, ann)


async def test_ending_a_session_requires_a_valid_access_token(auth: AuthApp) -> None:
    """Stops: an anonymous caller ending sessions (signing users out at will)."""
    ann = await auth.signup("ann@example.com")
    session_id = await current_session(auth, ann)

    response = await auth.client.delete(f"{SESSIONS}/{session_id}")

    assert_problem(response, 401, "core.unauthorized")
    await assert_signed_in(auth, ann)
