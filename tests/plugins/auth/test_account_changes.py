"""The `user` plugin's events reaching `auth`: what happens to sessions when an account changes.

An account that is deleted or deactivated must be signed out everywhere at once, by the
`user_deleted` / `user_updated` listeners revoking its sessions. The `user` plugin's own
principal check also refuses the account's access tokens while it is gone, so the tests
that bring the account back (reactivation, restore) are the ones proving the sessions
themselves were ended: from then on only the revocation stands between an old token and
the account.
"""

from __future__ import annotations

from typing import Any

from tests.plugins.auth.conftest import AUTH, ME, PASSWORD, AuthApp, assert_signed_out, bearer
from tests.support.problems import assert_problem


async def signed_in(auth: AuthApp, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await auth.login(email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def session_states(auth: AuthApp, user_id: str) -> dict[str, bool]:
    """Session id → revoked?, for every session row of the user."""
    rows = await auth.rows(
        "SELECT id, revoked_at FROM auth_session WHERE user_id = :user_id", user_id=user_id
    )
    return {session_id: revoked_at is not None for session_id, revoked_at in rows}


async def assert_login_refused(auth: AuthApp, email: str, password: str = PASSWORD) -> None:
    body = assert_problem(await auth.login(email, password), 401, "auth.invalid_credentials")
    assert body["detail"] == "Invalid email or password"  # the same answer as a wrong password


async def test_deleting_a_user_revokes_every_session_and_refuses_sign_in(auth: AuthApp) -> None:
    """Stops: a removed account (a fired employee, an abuser) staying signed in on every
    device it had, or signing back in."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    laptop = await signed_in(auth, "ann@example.com")

    await auth.user_service(lambda s: s.delete(user_id))

    states = await session_states(auth, user_id)
    assert len(states) == 2
    assert all(states.values()), states
    await assert_signed_out(auth, ann)
    await assert_signed_out(auth, laptop)
    await assert_login_refused(auth, "ann@example.com")


async def test_deleting_a_user_leaves_other_users_signed_in(auth: AuthApp) -> None:
    """Stops: an account removal that signs out everyone (a revocation not filtered by user)."""
    ann = await auth.signup("ann@example.com")
    bob = await auth.signup("bob@example.com")

    await auth.user_service(lambda s: s.delete(ann["user"]["id"]))

    bob_sessions = await session_states(auth, bob["user"]["id"])
    assert len(bob_sessions) == 1
    assert not any(bob_sessions.values()), bob_sessions
    assert (await auth.me(bob)).status_code == 200
    assert (await auth.refresh(bob["refresh_token"])).status_code == 200


async def test_deactivation_revokes_every_session_and_reactivation_opens_none(
    auth: AuthApp,
) -> None:
    """Stops: a suspended account's old tokens coming back to life when an admin reactivates
    it. The sessions must have been ended, not merely refused while the account was off:
    after reactivation the old access and refresh tokens still fail, and only a new sign-in
    opens a session."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    laptop = await signed_in(auth, "ann@example.com")

    await auth.user_service(lambda s: s.set_active(user_id, False))

    old_sessions = await session_states(auth, user_id)
    assert len(old_sessions) == 2
    assert all(old_sessions.values()), old_sessions
    await assert_signed_out(auth, ann)
    await assert_signed_out(auth, laptop)
    await assert_login_refused(auth, "ann@example.com")

    await auth.user_service(lambda s: s.set_active(user_id, True))

    await assert_signed_out(auth, ann)
    await assert_signed_out(auth, laptop)
    assert await session_states(auth, user_id) == old_sessions
    again = await signed_in(auth, "ann@example.com")
    assert (await auth.me(again)).status_code == 200
    listed = await auth.client.get(f"{AUTH}/sessions", headers=bearer(again))
    assert listed.status_code == 200, listed.text
    [new_session] = listed.json()["items"]
    assert new_session["id"] not in old_sessions
    assert new_session["current"] is True


async def test_an_admin_deactivating_a_user_over_http_signs_them_out(auth: AuthApp) -> None:
    """Stops: the admin API's deactivation (the request's own transaction, not a service
    call) leaving the user's sessions alive, and shows the admin keeps theirs."""
    root = await auth.signup("root@example.com")
    await auth.user_service(lambda s: s.update(root["user"]["id"], {"role": "admin"}))
    ann = await auth.signup("ann@example.com")

    response = await auth.client.patch(
        f"/api/v1/users/{ann['user']['id']}", json={"is_active": False}, headers=bearer(root)
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    states = await session_states(auth, ann["user"]["id"])
    assert list(states.values()) == [True]
    await assert_signed_out(auth, ann)
    await assert_login_refused(auth, "ann@example.com")
    assert (await auth.me(root)).status_code == 200
    assert (await auth.refresh(root["refresh_token"])).status_code == 200


async def test_a_change_that_is_not_deactivation_keeps_the_sessions(auth: AuthApp) -> None:
    """Stops: users being signed out by harmless account edits (a rename, email verified),
    which would make the `user_updated` listener a sign-out on every profile save."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]

    await auth.user_service(lambda s: s.update(user_id, {"name": "Ann Smith"}))
    await auth.user_service(lambda s: s.update(user_id, {"email_verified": True}))
    await auth.user_service(lambda s: s.set_active(user_id, True))  # already active: no change

    states = await session_states(auth, user_id)
    assert len(states) == 1
    assert not any(states.values()), states
    me = await auth.me(ann)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "Ann Smith"
    assert (await auth.refresh(ann["refresh_token"])).status_code == 200


async def test_deleting_myself_ends_the_session_i_used_to_do_it(auth: AuthApp) -> None:
    """Stops: the token that deleted the account still working afterwards (a "deleted"
    account that can go on acting through the API)."""
    ann = await auth.signup("ann@example.com")
    laptop = await signed_in(auth, "ann@example.com")

    response = await auth.client.delete(ME, headers=bearer(ann))

    assert response.status_code == 204, response.text
    await assert_signed_out(auth, ann)
    await assert_signed_out(auth, laptop)
    states = await session_states(auth, ann["user"]["id"])
    assert len(states) == 2
    assert all(states.values()), states
    await assert_login_refused(auth, "ann@example.com")


async def test_a_restored_user_signs_in_with_the_old_password_but_old_sessions_stay_ended(
    auth: AuthApp,
) -> None:
    """Stops two failures of an undo: the restored user locked out for good (the soft delete
    destroyed the credential), and the sessions of before the deletion coming back with the
    account (a token stolen before the deletion working again)."""
    ann = await auth.signup("ann@example.com")
    user_id = ann["user"]["id"]
    await auth.user_service(lambda s: s.delete(user_id))
    await assert_login_refused(auth, "ann@example.com")

    restored = await auth.user_service(lambda s: s.restore(user_id))

    assert restored.id == user_id
    assert restored.deleted_at is None
    assert await auth.rows(
        "SELECT user_id FROM auth_credential WHERE user_id = :user_id", user_id=user_id
    ) == [(user_id,)]
    await assert_signed_out(auth, ann)
    again = await signed_in(auth, "ann@example.com")
    assert again["user"]["id"] == user_id
    me = await auth.me(again)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ann@example.com"
    states = await session_states(auth, user_id)
    assert sorted(states.values()) == [False, True]  # the old one ended, the new one live
