"""`POST /api/v1/auth/password`: a signed-in user replaces their password.

Changing a password is what a user does when they fear someone else knows it, so the change
must lock that someone out: every other session ends at once, the old password stops
working, and a caller who does not know the current password changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.plugins.auth.conftest import (
    AUTH,
    NEW_PASSWORD,
    PASSWORD,
    AuthApp,
    AuthAppFactory,
    assert_signed_in,
    assert_signed_out,
    bearer,
)
from tests.support.problems import assert_problem

PASSWORD_URL = f"{AUTH}/password"


async def change_password(
    auth: AuthApp, tokens: dict[str, Any] | None, current: str, new: str, **extra: Any
) -> httpx.Response:
    headers = bearer(tokens) if tokens is not None else {}
    body = {"current_password": current, "new_password": new, **extra}
    return await auth.client.post(PASSWORD_URL, json=body, headers=headers)


async def signed_in(auth: AuthApp, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await auth.login(email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def credential(auth: AuthApp, user_id: str) -> tuple[str, datetime]:
    """The stored password hash and when it was set, straight from `auth_credential`."""
    [(password_hash, changed_at)] = await auth.rows(
        "SELECT password_hash, changed_at FROM auth_credential WHERE user_id = :user_id",
        user_id=user_id,
    )
    return password_hash, as_utc(changed_at)


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read with raw SQL: an aware datetime (PostgreSQL) or naive UTC text
    (SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def live_sessions(auth: AuthApp, user_id: str) -> int:
    [(count,)] = await auth.rows(
        "SELECT COUNT(*) FROM auth_session WHERE user_id = :user_id AND revoked_at IS NULL",
        user_id=user_id,
    )
    return int(count)


async def assert_login_refused(auth: AuthApp, email: str, password: str) -> None:
    assert_problem(await auth.login(email, password), 401, "auth.invalid_credentials")


async def test_changing_the_password_ends_every_other_session_and_the_old_password(
    auth: AuthApp,
) -> None:
    """Stops: an attacker who learnt the old password (or holds a stolen session) staying in
    after the owner changed it — their refresh and access tokens must die at once, the old
    password must stop working, and the owner must not be signed out of their own device."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    others = [await signed_in(auth, "ann@example.com") for _ in range(2)]
    old_hash, old_changed_at = await credential(auth, user_id)

    response = await change_password(auth, ann, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 204, response.text
    assert response.content == b""
    for other in others:
        await assert_signed_out(auth, other)
    refreshed = await assert_signed_in(auth, ann)  # the caller's own session carries on
    await assert_signed_in(auth, refreshed)
    assert await live_sessions(auth, user_id) == 1
    new_hash, new_changed_at = await credential(auth, user_id)
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$")
    assert NEW_PASSWORD not in new_hash
    assert new_changed_at > old_changed_at

    await assert_login_refused(auth, "ann@example.com", PASSWORD)
    await signed_in(auth, "ann@example.com", NEW_PASSWORD)
    assert await live_sessions(auth, user_id) == 2


async def test_a_wrong_current_password_is_403_and_changes_nothing(auth: AuthApp) -> None:
    """Stops: someone holding a stolen access token (an unlocked laptop) taking the account
    over by setting a password of their own and signing the owner out everywhere."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    other = await signed_in(auth, "ann@example.com")
    stored = await credential(auth, user_id)

    response = await change_password(auth, ann, "not the password at all", NEW_PASSWORD)

    body = assert_problem(response, 403, "auth.wrong_password")
    assert body["detail"] == "The current password is wrong"
    assert await credential(auth, user_id) == stored
    assert await live_sessions(auth, user_id) == 2
    await assert_signed_in(auth, other)
    await assert_signed_in(auth, ann)
    await assert_login_refused(auth, "ann@example.com", NEW_PASSWORD)
    await signed_in(auth, "ann@example.com", PASSWORD)


async def test_guessing_the_current_password_is_throttled_like_a_login(
    auth_app: AuthAppFactory,
) -> None:
    """Stops: a thief holding only a stolen access token (an unlocked laptop, a token in a
    log) guessing the account's password through this endpoint, where no failure is
    counted. The per-account limit on failed logins exists to stop exactly this guessing,
    and a guessed password outlives every revocation of the stolen session."""
    async with auth_app(login_limit_per_account="3/minute") as auth:
        ann = await auth.signup("ann@example.com")
        stored = await credential(auth, ann["user"]["id"])
        for number in range(3):
            guess = await change_password(auth, ann, f"guess number {number}", NEW_PASSWORD)
            assert_problem(guess, 403, "auth.wrong_password")

        response = await change_password(auth, ann, "guess number 3", NEW_PASSWORD)

        assert_problem(response, 429, "auth.too_many_attempts")
        assert int(response.headers["retry-after"]) >= 1
        assert await credential(auth, ann["user"]["id"]) == stored


@pytest.mark.parametrize(
    ("new_password", "kind"),
    [
        pytest.param("x7#Kq9!", "string_too_short", id="7-characters"),
        pytest.param("password1", "password_too_common", id="common"),
        pytest.param("PASSWORD1", "password_too_common", id="common-upper-case"),
        pytest.param("y" * 1025, "string_too_long", id="over-the-limit"),
    ],
)
async def test_a_new_password_the_policy_refuses_is_422_naming_new_password(
    auth: AuthApp, new_password: str, kind: str
) -> None:
    """Stops: the password change being a way around the sign-up policy (a weak or absurdly
    long password set later) — and the refusal must change nothing."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    other = await signed_in(auth, "ann@example.com")
    stored = await credential(auth, user_id)

    response = await change_password(auth, ann, PASSWORD, new_password)

    body = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("new_password", kind)]
    assert body["errors"][0]["loc"] == ["body", "new_password"]
    assert "new_password" in body["detail"]
    assert await credential(auth, user_id) == stored
    await assert_signed_in(auth, other)


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        pytest.param(
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "role": "admin"},
            "role",
            "extra_forbidden",
            id="unknown-field",
        ),
        pytest.param(
            {"new_password": NEW_PASSWORD}, "current_password", "missing", id="no-current"
        ),
        pytest.param({"current_password": PASSWORD}, "new_password", "missing", id="no-new"),
        pytest.param(
            {"current_password": "", "new_password": NEW_PASSWORD},
            "current_password",
            "string_too_short",
            id="empty-current",
        ),
    ],
)
async def test_a_malformed_body_is_422_naming_the_field(
    auth: AuthApp, body: dict[str, Any], field: str, kind: str
) -> None:
    """Stops: fields the endpoint does not know being silently accepted (a client believing
    it set something it did not), or a half-filled body changing the password."""
    ann = await auth.signup("ann@example.com")
    stored = await credential(auth, ann["user"]["id"])

    response = await auth.client.post(PASSWORD_URL, json=body, headers=bearer(ann))

    problem = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [(field, kind)]
    assert await credential(auth, ann["user"]["id"]) == stored


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="garbage-token"),
    ],
)
async def test_changing_a_password_requires_an_access_token(
    auth: AuthApp, headers: dict[str, str]
) -> None:
    """Stops: an anonymous caller changing anyone's password."""
    ann = await auth.signup("ann@example.com")
    stored = await credential(auth, ann["user"]["id"])

    response = await auth.client.post(
        PASSWORD_URL,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )

    assert_problem(response, 401, "core.unauthorized")
    assert await credential(auth, ann["user"]["id"]) == stored


async def test_the_access_token_of_an_ended_session_cannot_change_the_password(
    auth: AuthApp,
) -> None:
    """Stops: a thief whose session was ended (logout) using the still-unexpired access token
    to change the password back."""
    ann = await auth.signup("ann@example.com")
    thief = await signed_in(auth, "ann@example.com")
    assert (await auth.logout(thief["refresh_token"])).status_code == 204

    response = await change_password(auth, thief, PASSWORD, NEW_PASSWORD)

    assert_problem(response, 401, "core.unauthorized")
    await signed_in(auth, "ann@example.com", PASSWORD)
    await assert_signed_in(auth, ann)


async def test_my_password_change_leaves_other_users_alone(auth: AuthApp) -> None:
    """Stops: a password change revoking sessions (or touching the credential) of anyone but
    the caller — e.g. a query that forgets to filter by user."""
    ann = await auth.signup("ann@example.com")
    bob = await auth.signup("bob@example.com")
    bob_laptop = await signed_in(auth, "bob@example.com")
    bob_credential = await credential(auth, bob["user"]["id"])

    response = await change_password(auth, ann, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 204, response.text
    assert await live_sessions(auth, bob["user"]["id"]) == 2
    await assert_signed_in(auth, bob)
    await assert_signed_in(auth, bob_laptop)
    assert await credential(auth, bob["user"]["id"]) == bob_credential
    await signed_in(auth, "bob@example.com", PASSWORD)
