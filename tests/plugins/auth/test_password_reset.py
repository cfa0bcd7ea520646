"""`POST /api/v1/auth/password-reset/request` and `/confirm`: a user who forgot their
password proves they own the address and sets a new one.

The request must tell a stranger nothing (same answer, and the answer is out before the
account is even looked up), the mailed token must work once, for a limited time, only while
the password it was issued against is still the current one, and setting the new password
must end every session, as a password change does. Mail goes through a real SMTP server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

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
from tests.plugins.auth.mail_support import (
    RESET_CONFIRM,
    RESET_REQUEST,
    RESET_SUBJECT,
    assert_accepted,
    confirm_reset,
    mailed_reset_token,
    request_reset,
)
from tests.plugins.mail.smtp_support import MailServer
from tests.support.problems import assert_problem

THIRD_PASSWORD = "yet another fine passphrase"
ACCEPTED = "If an account with that email exists"
RESETS = "purpose = 'password_reset'"


async def signed_in(auth: AuthApp, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await auth.login(email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def assert_login_refused(auth: AuthApp, email: str, password: str) -> None:
    assert_problem(await auth.login(email, password), 401, "auth.invalid_credentials")


def assert_invalid_token(response: Any) -> None:
    body = assert_problem(response, 400, "auth.invalid_token")
    assert body["detail"] == "The token is invalid, expired or already used"


async def live_sessions(auth: AuthApp, user_id: str) -> int:
    [(count,)] = await auth.rows(
        "SELECT COUNT(*) FROM auth_session WHERE user_id = :user_id AND revoked_at IS NULL",
        user_id=user_id,
    )
    return int(count)


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read with raw SQL: aware (PostgreSQL) or naive UTC text (SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# The whole flow


async def test_the_mailed_token_sets_a_new_password_and_ends_every_session(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops: a reset that leaves the old password working, or leaves signed in whoever
    knew it (the reason the owner is resetting may be that someone else got in)."""
    ann = await mailing.signup("ann@example.com")
    laptop = await signed_in(mailing, "ann@example.com")

    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    response = await confirm_reset(mailing, token, NEW_PASSWORD)

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_signed_out(mailing, ann)
    await assert_signed_out(mailing, laptop)
    assert await live_sessions(mailing, ann["user"]["id"]) == 0
    await assert_login_refused(mailing, "ann@example.com", PASSWORD)
    fresh = await signed_in(mailing, "ann@example.com", NEW_PASSWORD)
    await assert_signed_in(mailing, fresh)


async def test_the_mail_goes_to_the_stored_address_whatever_the_case_typed(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops: the reset mail being sent to the address as the requester typed it (a
    look-alike spelling the requester controls) rather than to the account's own."""
    await mailing.signup("Ann.Smith@Example.com")

    assert_accepted(await request_reset(mailing, "ann.smith@EXAMPLE.COM"), ACCEPTED)

    [mail] = mail_server.with_subject(RESET_SUBJECT)
    assert mail.rcpt_tos == ["Ann.Smith@Example.com"]
    assert mail["To"] == "Ann.Smith@Example.com"


# Enumeration


async def test_known_unknown_and_disabled_emails_get_the_same_answer_and_one_mail(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops account enumeration: the answer for an email with an account must be the same
    byte for byte as for one without (or a deactivated or deleted one), and only the live,
    active account gets a mail."""
    await mailing.signup("ann@example.com")
    bob = await mailing.signup("bob@example.com")
    cid = await mailing.signup("cid@example.com")
    await mailing.user_service(lambda s: s.set_active(bob["user"]["id"], False))
    await mailing.user_service(lambda s: s.delete(cid["user"]["id"]))

    responses = {
        email: await request_reset(mailing, email)
        for email in ("ann@example.com", "nobody@example.com", "bob@example.com", "cid@example.com")
    }

    def visible(response: Any) -> tuple[int, bytes, dict[str, str]]:
        headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
        return response.status_code, response.content, headers

    known = visible(responses["ann@example.com"])
    assert_accepted(responses["ann@example.com"], ACCEPTED)
    for email, response in responses.items():
        assert visible(response) == known, email
    resets = mail_server.with_subject(RESET_SUBJECT)
    assert [mail.rcpt_tos for mail in resets] == [["ann@example.com"]]


async def test_the_answer_is_sent_before_the_account_is_looked_up(
    mailing: AuthApp, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops a timing oracle: if the lookup or the mail ran before the answer, a known
    email would answer measurably later than an unknown one. Driven as raw ASGI, so the
    moment the last byte of the answer leaves is recorded, and compared with the moment the
    account is looked up and the moment the SMTP server receives the mail."""
    await mailing.signup("ann@example.com")
    events: list[str] = []
    recovery = mailing.container.recovery()
    directory = recovery.directory

    def looked_up(**kwargs: Any) -> Any:
        events.append("account looked up")
        return directory(**kwargs)

    monkeypatch.setattr(recovery, "directory", looked_up)
    mail_server.collector.on_mail = lambda mail: events.append(f"mail to {mail.rcpt_tos[0]}")

    known = await raw_post(mailing.app, RESET_REQUEST, {"email": "ann@example.com"}, events)
    assert events == ["answer sent", "account looked up", "mail to ann@example.com"]
    events.clear()
    unknown = await raw_post(mailing.app, RESET_REQUEST, {"email": "no@example.com"}, events)
    assert events == ["answer sent", "account looked up"]

    assert known == unknown
    assert known[0] == 202


async def raw_post(
    app: Any, path: str, payload: dict[str, Any], events: list[str]
) -> tuple[int, bytes]:
    """POST `payload` to the ASGI app; record "answer sent" in `events` when the last body
    chunk goes out. Returns the status and body."""
    body = json.dumps(payload).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    answered = asyncio.Event()
    sent_body = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                events.append("answer sent")
                answered.set()

    await app(scope, receive, send)
    return status, b"".join(chunks)


# Single use, expiry, binding to the password


async def test_a_token_works_once(mailing: AuthApp, mail_server: MailServer) -> None:
    """Stops a reset link (in a mailbox, a browser history, a proxy log) being replayed to
    take the account back after its owner used it."""
    await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    assert (await confirm_reset(mailing, token, NEW_PASSWORD)).status_code == 204

    assert_invalid_token(await confirm_reset(mailing, token, THIRD_PASSWORD))

    await assert_login_refused(mailing, "ann@example.com", THIRD_PASSWORD)
    await signed_in(mailing, "ann@example.com", NEW_PASSWORD)


async def test_two_confirmations_at_once_set_one_password(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops the single use being a check-then-act race: two confirmations of one token
    sent together must not both succeed."""
    await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")

    first, second = await asyncio.gather(
        confirm_reset(mailing, token, NEW_PASSWORD), confirm_reset(mailing, token, THIRD_PASSWORD)
    )

    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [204, 400], (first.text, second.text)
    loser = first if first.status_code == 400 else second
    assert_invalid_token(loser)
    winner = NEW_PASSWORD if first.status_code == 204 else THIRD_PASSWORD
    other = THIRD_PASSWORD if winner == NEW_PASSWORD else NEW_PASSWORD
    await signed_in(mailing, "ann@example.com", winner)
    await assert_login_refused(mailing, "ann@example.com", other)


async def test_a_token_lasts_an_hour_by_default(mailing: AuthApp, mail_server: MailServer) -> None:
    """Stops reset links living longer than documented (1 hour unless configured)."""
    await mailing.signup("ann@example.com")
    await mailed_reset_token(mailing, mail_server, "ann@example.com")

    [(created_at, expires_at)] = await mailing.rows(
        f"SELECT created_at, expires_at FROM auth_action_token WHERE {RESETS}"
    )

    assert as_utc(expires_at) - as_utc(created_at) == timedelta(hours=1)
    assert "for 60 minutes" in mail_server.with_subject(RESET_SUBJECT)[0].text


async def test_a_shorter_configured_lifetime_is_used(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    async with auth_app(mail={"smtp_url": mail_server.url()}, password_reset_ttl=300) as auth:
        await auth.signup("ann@example.com")
        await mailed_reset_token(auth, mail_server, "ann@example.com")

        [(created_at, expires_at)] = await auth.rows(
            f"SELECT created_at, expires_at FROM auth_action_token WHERE {RESETS}"
        )

        assert as_utc(expires_at) - as_utc(created_at) == timedelta(minutes=5)
        assert "for 5 minutes" in mail_server.with_subject(RESET_SUBJECT)[0].text


async def test_an_expired_token_is_refused(mailing: AuthApp, mail_server: MailServer) -> None:
    """Stops an old reset mail (a mailbox breached months later) taking the account."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    await mailing.execute(
        f"UPDATE auth_action_token SET expires_at = :t WHERE {RESETS}",
        t=datetime.now(UTC) - timedelta(seconds=1),
    )

    assert_invalid_token(await confirm_reset(mailing, token, NEW_PASSWORD))

    await assert_signed_in(mailing, ann)
    await signed_in(mailing, "ann@example.com", PASSWORD)
    await assert_login_refused(mailing, "ann@example.com", NEW_PASSWORD)


async def test_a_token_issued_before_a_password_change_is_refused(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a reset link outliving the password it was sent for: an owner who changes
    their password (say, after noticing a reset mail they did not ask for) must thereby
    kill the link, as Django binds its tokens to the password hash."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    changed = await mailing.client.post(
        f"{AUTH}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(ann),
    )
    assert changed.status_code == 204, changed.text

    assert_invalid_token(await confirm_reset(mailing, token, THIRD_PASSWORD))

    await assert_signed_in(mailing, ann)  # the change kept the caller's session
    await signed_in(mailing, "ann@example.com", NEW_PASSWORD)
    await assert_login_refused(mailing, "ann@example.com", THIRD_PASSWORD)

    later = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    assert (await confirm_reset(mailing, later, THIRD_PASSWORD)).status_code == 204
    await signed_in(mailing, "ann@example.com", THIRD_PASSWORD)


async def test_using_one_reset_kills_the_other_outstanding_tokens(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a second reset mail (older or newer) staying usable after the owner reset
    their password with another one."""
    await mailing.signup("ann@example.com")
    older = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    newer = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    assert older != newer

    assert (await confirm_reset(mailing, newer, NEW_PASSWORD)).status_code == 204

    assert_invalid_token(await confirm_reset(mailing, older, THIRD_PASSWORD))
    await signed_in(mailing, "ann@example.com", NEW_PASSWORD)


async def test_a_token_mailed_to_a_former_address_is_refused(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a reset link left in a mailbox the account has moved away from (perhaps because
    that mailbox was compromised) taking the account over. (No route changes an email yet:
    the `user` service does, as an admin's tool would.)"""
    ann = await mailing.signup("ann@example.com")
    user_id = ann["user"]["id"]
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    await mailing.user_service(
        lambda s: s.update(user_id, {"email": "ann@new.example", "email_key": "ann@new.example"})
    )

    assert_invalid_token(await confirm_reset(mailing, token, NEW_PASSWORD))

    await signed_in(mailing, "ann@new.example", PASSWORD)
    later = await mailed_reset_token(mailing, mail_server, "ann@new.example")
    assert (await confirm_reset(mailing, later, NEW_PASSWORD)).status_code == 204


async def test_a_token_of_a_deactivated_account_is_refused(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a reset mail sent before an account was disabled re-opening it."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")
    await mailing.user_service(lambda s: s.set_active(ann["user"]["id"], False))

    assert_invalid_token(await confirm_reset(mailing, token, NEW_PASSWORD))

    await mailing.user_service(lambda s: s.set_active(ann["user"]["id"], True))
    await signed_in(mailing, "ann@example.com", PASSWORD)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="last-character"),
        pytest.param(lambda t: t.upper(), id="upper-cased"),
        pytest.param(lambda t: t + "x", id="one-more-character"),
        pytest.param(lambda t: "garbage", id="garbage"),
        pytest.param(lambda t: "ä\u200b" * 10, id="non-ascii"),
        pytest.param(lambda t: hashlib.sha256(t.encode()).hexdigest(), id="the-stored-hash"),
    ],
)
async def test_a_forged_token_is_refused(
    mailing: AuthApp, mail_server: MailServer, forge: Any
) -> None:
    """Stops guessing or deriving a token: only the exact mailed text works, and not even
    the hash the database keeps (someone who read the database cannot use it)."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")

    assert_invalid_token(await confirm_reset(mailing, forge(token), NEW_PASSWORD))

    await assert_signed_in(mailing, ann)
    assert (await confirm_reset(mailing, token, NEW_PASSWORD)).status_code == 204


async def test_a_refresh_token_is_not_a_reset_token(mailing: AuthApp) -> None:
    """Stops another of the app's opaque tokens (hashed the same way) passing as a reset
    token."""
    ann = await mailing.signup("ann@example.com")

    assert_invalid_token(await confirm_reset(mailing, ann["refresh_token"], NEW_PASSWORD))
    await signed_in(mailing, "ann@example.com", PASSWORD)


# The new password


@pytest.mark.parametrize(
    ("new_password", "kind"),
    [
        pytest.param("x7#Kq9!", "string_too_short", id="7-characters"),
        pytest.param("password1", "password_too_common", id="common"),
        pytest.param("y" * 1025, "string_too_long", id="over-the-limit"),
    ],
)
async def test_a_new_password_the_policy_refuses_is_422_and_keeps_the_token(
    mailing: AuthApp, mail_server: MailServer, new_password: str, kind: str
) -> None:
    """Stops the reset being a way around the password policy, and a typo in the new
    password costing the user their link (nothing was spent)."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")

    response = await confirm_reset(mailing, token, new_password)

    body = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("new_password", kind)]
    assert "new_password" in body["detail"]
    await assert_signed_in(mailing, ann)
    await signed_in(mailing, "ann@example.com", PASSWORD)
    assert (await confirm_reset(mailing, token, NEW_PASSWORD)).status_code == 204
    await signed_in(mailing, "ann@example.com", NEW_PASSWORD)


# Storage


async def test_only_a_hash_of_the_token_is_stored(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a database leak (a backup, a read replica) handing out working reset links."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_reset_token(mailing, mail_server, "ann@example.com")

    for row in await mailing.rows("SELECT * FROM auth_action_token"):
        for value in row:
            assert token not in str(value), row
    [(user_id, token_hash, used_at)] = await mailing.rows(
        f"SELECT user_id, token_hash, used_at FROM auth_action_token WHERE {RESETS}"
    )
    assert (user_id, used_at) == (ann["user"]["id"], None)
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()

    assert (await confirm_reset(mailing, token, NEW_PASSWORD)).status_code == 204
    [(used_at,)] = await mailing.rows(f"SELECT used_at FROM auth_action_token WHERE {RESETS}")
    assert used_at is not None


# Throttling


async def test_past_the_mail_limit_requests_still_answer_202_but_send_nothing(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops the endpoint being used to flood someone's mailbox, without the limit
    becoming an oracle (the answer stays the same), and without one account's limit
    touching another's."""
    async with auth_app(
        mail={"smtp_url": mail_server.url()}, mail_limit_per_account="2/hour"
    ) as auth:
        await auth.signup("ann@example.com")
        await auth.signup("bob@example.com")
        spellings = ["ann@example.com", "ANN@example.com", "Ann@Example.com", "ann@example.com"]
        answers = [await request_reset(auth, email) for email in spellings]
        bob = await request_reset(auth, "bob@example.com")

        for answer in [*answers, bob]:
            assert_accepted(answer, ACCEPTED)
            assert answer.content == answers[0].content
        assert len(mail_server.to("ann@example.com", RESET_SUBJECT)) == 2
        assert len(mail_server.to("bob@example.com", RESET_SUBJECT)) == 1


# Malformed requests


@pytest.mark.parametrize(
    ("path", "body", "field", "kind"),
    [
        pytest.param(
            RESET_REQUEST,
            {"email": "ann@example.com", "role": "admin"},
            "role",
            "extra_forbidden",
            id="request-unknown-field",
        ),
        pytest.param(RESET_REQUEST, {}, "email", "missing", id="request-no-email"),
        pytest.param(
            RESET_CONFIRM,
            {"token": "t", "new_password": NEW_PASSWORD, "email": "x@example.com"},
            "email",
            "extra_forbidden",
            id="confirm-unknown-field",
        ),
        pytest.param(
            RESET_CONFIRM, {"new_password": NEW_PASSWORD}, "token", "missing", id="confirm-no-token"
        ),
        pytest.param(RESET_CONFIRM, {"token": "t"}, "new_password", "missing", id="confirm-no-pw"),
    ],
)
async def test_a_malformed_body_is_422_naming_the_field(
    mailing: AuthApp,
    mail_server: MailServer,
    path: str,
    body: dict[str, Any],
    field: str,
    kind: str,
) -> None:
    """Stops fields the endpoint does not know being silently accepted, and a half-filled
    body mailing anyone."""
    await mailing.signup("ann@example.com")

    response = await mailing.client.post(path, json=body)

    problem = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [(field, kind)]
    assert mail_server.with_subject(RESET_SUBJECT) == []
