"""`POST /api/v1/auth/verify/request` and `/confirm`: a user proves they own their email
address by following a mailed link; with `require_verified_email`, only then may they sign in.

The token must work once, for a limited time, and only for the address it was mailed to.
Mail goes through a real SMTP server.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.auth.conftest import (
    AUTH,
    PASSWORD,
    AuthApp,
    AuthAppFactory,
    assert_signed_in,
)
from tests.plugins.auth.mail_support import (
    VERIFY_CONFIRM,
    VERIFY_REQUEST,
    VERIFY_SUBJECT,
    confirm_reset,
    confirm_verification,
    mailed_reset_token,
    mailed_verification_token,
    request_verification,
    token_in,
)
from tests.plugins.mail.smtp_support import MailServer
from tests.support.problems import assert_problem

ACCEPTED = "If your address is not verified yet"
VERIFICATIONS = "purpose = 'verify_email'"


async def is_verified(auth: AuthApp, tokens: dict[str, Any]) -> bool:
    me = await auth.me(tokens)
    assert me.status_code == 200, me.text
    verified: bool = me.json()["email_verified"]
    return verified


def assert_invalid_token(response: Any) -> None:
    body = assert_problem(response, 400, "auth.invalid_token")
    assert body["detail"] == "The token is invalid, expired or already used"


def as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def test_the_mailed_token_marks_the_address_verified(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops: a verification that does not record anything, or records it for a user who
    never received the mail."""
    ann = await mailing.signup("ann@example.com")
    bob = await mailing.signup("bob@example.com")
    assert not await is_verified(mailing, ann)

    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    response = await confirm_verification(mailing, token)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await is_verified(mailing, ann)
    assert not await is_verified(mailing, bob)
    await assert_signed_in(mailing, ann)  # verifying ends no session


async def test_the_mail_says_what_the_token_is_for(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a verification mail that does not say which address, for how long, or where to
    send the token (no front end configured: the API route)."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")

    mail = mail_server.to("ann@example.com", VERIFY_SUBJECT)[-1]
    assert mail["To"] == "ann@example.com"
    assert "ann@example.com is your address" in mail.text
    assert "for 24 hours" in mail.text
    assert f"POST /api/v1/auth/verify/confirm:\n\n{token}\n" in mail.text
    [(created_at, expires_at)] = await mailing.rows(
        f"SELECT created_at, expires_at FROM auth_action_token WHERE {VERIFICATIONS} "
        "ORDER BY created_at DESC LIMIT 1"
    )
    assert as_utc(expires_at) - as_utc(created_at) == timedelta(hours=24)


async def test_with_a_front_end_the_mail_links_to_its_verify_page(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    async with auth_app(
        mail={"smtp_url": mail_server.url()}, frontend_url="https://app.example.com/"
    ) as auth:
        ann = await auth.signup("ann@example.com")
        token = await mailed_verification_token(auth, mail_server, ann, "ann@example.com")

        mail = mail_server.to("ann@example.com", VERIFY_SUBJECT)[-1]
        assert f"https://app.example.com/verify-email?token={token}\n" in mail.text
        assert (await confirm_verification(auth, token)).status_code == 204


async def test_a_token_works_once(mailing: AuthApp, mail_server: MailServer) -> None:
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    assert (await confirm_verification(mailing, token)).status_code == 204

    assert_invalid_token(await confirm_verification(mailing, token))
    assert await is_verified(mailing, ann)


async def test_an_expired_token_is_refused(mailing: AuthApp, mail_server: MailServer) -> None:
    """Stops an old verification mail proving ownership of an address long after (the
    address may have changed hands since)."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    await mailing.execute(
        f"UPDATE auth_action_token SET expires_at = :t WHERE {VERIFICATIONS}",
        t=datetime.now(UTC) - timedelta(seconds=1),
    )

    assert_invalid_token(await confirm_verification(mailing, token))
    assert not await is_verified(mailing, ann)


async def test_changing_the_email_invalidates_the_token(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a token mailed to the old address verifying the new one, which nobody has
    proved they own. (No route changes an email yet: the `user` service does, as an
    admin's tool would.)"""
    ann = await mailing.signup("ann@example.com")
    user_id = ann["user"]["id"]
    old = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    await mailing.user_service(
        lambda s: s.update(user_id, {"email": "ann@new.example", "email_key": "ann@new.example"})
    )
    me = await mailing.me(ann)
    assert me.json()["email"] == "ann@new.example"

    assert_invalid_token(await confirm_verification(mailing, old))
    assert not await is_verified(mailing, ann)

    new = await mailed_verification_token(mailing, mail_server, ann, "ann@new.example")
    assert (await confirm_verification(mailing, new)).status_code == 204
    assert await is_verified(mailing, ann)


async def test_a_token_of_a_deactivated_account_is_refused(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    await mailing.user_service(lambda s: s.set_active(ann["user"]["id"], False))

    assert_invalid_token(await confirm_verification(mailing, token))

    user = await mailing.user_service(lambda s: s.get(ann["user"]["id"]))
    assert not user.email_verified


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="last-character"),
        pytest.param(lambda t: "garbage", id="garbage"),
        pytest.param(lambda t: hashlib.sha256(t.encode()).hexdigest(), id="the-stored-hash"),
    ],
)
async def test_a_forged_token_is_refused(
    mailing: AuthApp, mail_server: MailServer, forge: Any
) -> None:
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")

    assert_invalid_token(await confirm_verification(mailing, forge(token)))
    assert not await is_verified(mailing, ann)
    assert (await confirm_verification(mailing, token)).status_code == 204


async def test_reset_and_verification_tokens_do_not_stand_in_for_each_other(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops a verification mail (sent to anyone who signs up, so easy to get) resetting a
    password, and a reset mail verifying an address."""
    ann = await mailing.signup("ann@example.com")
    verify = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    reset = await mailed_reset_token(mailing, mail_server, "ann@example.com")

    assert_invalid_token(await confirm_reset(mailing, verify, "a brand new passphrase"))
    assert_invalid_token(await confirm_verification(mailing, reset))

    assert not await is_verified(mailing, ann)
    assert (await mailing.login("ann@example.com", PASSWORD)).status_code == 200
    assert (await confirm_verification(mailing, verify)).status_code == 204
    assert (await confirm_reset(mailing, reset, "a brand new passphrase")).status_code == 204


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="garbage-token"),
    ],
)
async def test_asking_for_a_mail_needs_an_access_token(
    mailing: AuthApp, mail_server: MailServer, headers: dict[str, str]
) -> None:
    await mailing.signup("ann@example.com")
    before = len(mail_server.inbox)

    response = await mailing.client.post(VERIFY_REQUEST, headers=headers)

    assert_problem(response, 401, "core.unauthorized")
    assert len(mail_server.inbox) == before


async def test_a_verified_address_gets_no_more_mail(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    """Stops the endpoint mailing a verified user at will (the same 202 as otherwise)."""
    ann = await mailing.signup("ann@example.com")
    token = await mailed_verification_token(mailing, mail_server, ann, "ann@example.com")
    assert (await confirm_verification(mailing, token)).status_code == 204
    before = len(mail_server.inbox)

    response = await request_verification(mailing, ann)

    assert response.status_code == 202, response.text
    assert response.json()["detail"].startswith(ACCEPTED)
    assert len(mail_server.inbox) == before


async def test_past_the_mail_limit_requests_send_nothing(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops a signed-in user (or a stolen token) flooding their address with mail."""
    async with auth_app(
        mail={"smtp_url": mail_server.url()}, mail_limit_per_account="2/hour"
    ) as auth:
        ann = await auth.signup("ann@example.com")  # the first mail, sent at sign-up
        await mailed_verification_token(auth, mail_server, ann, "ann@example.com")

        for _ in range(2):
            response = await request_verification(auth, ann)
            assert response.status_code == 202, response.text

        assert len(mail_server.to("ann@example.com", VERIFY_SUBJECT)) == 2


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        pytest.param({"token": "t", "user_id": "usr_x"}, "user_id", "extra_forbidden", id="extra"),
        pytest.param({}, "token", "missing", id="no-token"),
    ],
)
async def test_a_malformed_confirmation_is_422_naming_the_field(
    mailing: AuthApp, body: dict[str, Any], field: str, kind: str
) -> None:
    response = await mailing.client.post(VERIFY_CONFIRM, json=body)

    problem = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [(field, kind)]


# Sign-up


async def test_signing_up_with_mail_configured_sends_the_verification_mail(
    mailing: AuthApp, mail_server: MailServer
) -> None:
    ann = await mailing.signup("ann@example.com")

    mail = mail_server.only_mail_to("ann@example.com")
    assert mail["Subject"] == VERIFY_SUBJECT
    assert "access_token" in ann  # still signed in: verification is not required
    assert (await confirm_verification(mailing, token_in(mail))).status_code == 204
    assert await is_verified(mailing, ann)


async def test_signing_up_without_mail_configured_sends_nothing_and_succeeds(
    auth: AuthApp, mail_server: MailServer, tmp_path: Path
) -> None:
    """Stops sign-up failing (or writing mail somewhere unexpected) where no transport is
    configured: outside development there is no outbox unless one is set."""
    ann = await auth.signup("ann@example.com")

    assert (await auth.me(ann)).status_code == 200
    assert await auth.rows("SELECT id FROM auth_action_token") == []
    assert mail_server.inbox == []
    assert not (tmp_path / "var").exists()


# require_verified_email


async def test_requiring_verified_emails_holds_sign_in_until_the_address_is_verified(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops an account whose address nobody proved from signing in where a deployment
    requires it — without letting the refusal tell a stranger anything: only the right
    password earns the 403."""
    async with auth_app(mail={"smtp_url": mail_server.url()}, require_verified_email=True) as auth:
        created = await auth.signup("ann@example.com")

        assert created.keys() == {"user", "verification_required"}, created
        assert created["verification_required"] is True
        assert created["user"]["email"] == "ann@example.com"
        assert created["user"]["email_verified"] is False
        assert await auth.rows("SELECT id FROM auth_session") == []

        refused = await auth.login("ann@example.com", PASSWORD)
        body = assert_problem(refused, 403, "auth.email_not_verified")
        assert "access_token" not in refused.text
        form = await auth.client.post(
            f"{AUTH}/token", data={"username": "ann@example.com", "password": PASSWORD}
        )
        assert assert_problem(form, 400, "auth.email_not_verified")["error"] == "invalid_grant"
        wrong = await auth.login("ann@example.com", "not the password at all")
        unknown = await auth.login("nobody@example.com", PASSWORD)
        for response in (wrong, unknown):
            problem = assert_problem(response, 401, "auth.invalid_credentials")
            assert problem["detail"] == "Invalid email or password"
        assert body["detail"] != "Invalid email or password"
        assert await auth.rows("SELECT id FROM auth_session") == []

        mail = mail_server.only_mail_to("ann@example.com")
        assert (await confirm_verification(auth, token_in(mail))).status_code == 204

        signed_in = await auth.login("ann@example.com", PASSWORD)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email_verified"] is True
        await assert_signed_in(auth, signed_in.json())


async def test_a_deactivated_unverified_account_gets_the_plain_401(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops the 403 telling someone with the password that a disabled account exists."""
    async with auth_app(mail={"smtp_url": mail_server.url()}, require_verified_email=True) as auth:
        created = await auth.signup("ann@example.com")
        await auth.user_service(lambda s: s.set_active(created["user"]["id"], False))

        response = await auth.login("ann@example.com", PASSWORD)

        assert_problem(response, 401, "auth.invalid_credentials")


@pytest.mark.parametrize("mail", [True, False], ids=["with-mail", "without-mail"])
async def test_requiring_verified_emails_without_mail_warns_at_startup(
    auth_app: AuthAppFactory,
    mail_server: MailServer,
    caplog: pytest.LogCaptureFixture,
    mail: bool,
) -> None:
    """Without any way to mail a link, no new account could ever sign in: say so."""
    caplog.set_level(logging.WARNING, logger="courtyard.auth")
    settings: dict[str, Any] = {"mail": {"smtp_url": mail_server.url()}} if mail else {}
    async with auth_app(require_verified_email=True, **settings):
        warned = [r for r in caplog.records if "REQUIRE_VERIFIED_EMAIL" in r.getMessage()]
    assert len(warned) == (0 if mail else 1)
    if warned:
        assert warned[0].levelno == logging.WARNING
