"""How the `auth` plugin's mails leave the app: through the `mail` plugin's mailer, to a
plugin implementing `deliver_mail` first, else to SMTP (`COURTYARD_MAIL__SMTP_URL`) or the
development outbox folder.

Sending happens after the answer, so a mail server that is down costs the user nothing and
shows up in the log, with the id of the request that asked for the mail. SMTP is a real
server in the test process (aiosmtpd). The transports themselves (TLS, credentials, the
outbox's files) are the `mail` plugin's: tests/plugins/mail.
"""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from core.logging import LOG_FORMAT, RequestIdFilter
from tests.plugins.auth.conftest import NEW_PASSWORD, PASSWORD, AuthApp, AuthAppFactory
from tests.plugins.auth.mail_support import (
    RESET_SUBJECT,
    VERIFY_SUBJECT,
    assert_accepted,
    confirm_reset,
    confirm_verification,
    request_reset,
    request_verification,
    token_in,
)
from tests.plugins.mail.conftest import AsyncMailApi, SyncMailApi
from tests.plugins.mail.smtp_support import MailServer, free_port

ACCEPTED = "If an account with that email exists"
SMTP_PASSWORD = "s3cret-sm@tp-pass"
SMTP_PASSWORD_IN_URL = "s3cret-sm%40tp-pass"


async def signed_in(auth: AuthApp, email: str, password: str) -> dict[str, Any]:
    response = await auth.login(email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# SMTP


async def test_a_reset_mail_reaches_the_smtp_server_with_a_working_link(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops a mail that arrives malformed, from the wrong sender, or with a link that
    does not lead to the front end's reset page with a token that works."""
    async with auth_app(
        mail={"smtp_url": mail_server.url(), "sender": "Courtyard Support <support@example.com>"},
        frontend_url="https://app.example.com",
    ) as auth:
        await auth.signup("ann@example.com")

        assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

        [mail] = mail_server.with_subject(RESET_SUBJECT)
        assert mail.mail_from == "support@example.com"
        assert mail.rcpt_tos == ["ann@example.com"]
        assert parseaddr(mail["From"]) == ("Courtyard Support", "support@example.com")
        assert mail["To"] == "ann@example.com"
        assert mail["Date"]
        assert mail["Message-ID"]
        assert "Hello Test User," in mail.text
        token = token_in(mail)
        assert f"\nhttps://app.example.com/reset-password?token={token}\n" in mail.text
        assert (await confirm_reset(auth, token, NEW_PASSWORD)).status_code == 204
        await signed_in(auth, "ann@example.com", NEW_PASSWORD)


async def test_without_a_front_end_the_mail_carries_the_token_and_the_route(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    async with auth_app(mail={"smtp_url": mail_server.url()}) as auth:
        await auth.signup("ann@example.com")

        await request_reset(auth, "ann@example.com")

        [mail] = mail_server.with_subject(RESET_SUBJECT)
        token = token_in(mail)
        assert f"POST /api/v1/auth/password-reset/confirm:\n\n{token}\n" in mail.text
        assert "http" not in mail.text
        assert (await confirm_reset(auth, token, NEW_PASSWORD)).status_code == 204


@pytest.mark.parametrize("userinfo", ["", f"mailer:{SMTP_PASSWORD_IN_URL}"])
async def test_a_mail_server_that_is_down_costs_the_user_nothing_and_is_logged(
    auth_app: AuthAppFactory, caplog: pytest.LogCaptureFixture, userinfo: str
) -> None:
    """Stops a mail outage turning into failed requests (or hanging ones), and going
    unnoticed: the failure is logged at ERROR with the id of the request that asked for
    the mail, so an operator can find it — and never with the SMTP password."""
    caplog.set_level(logging.ERROR)
    caplog.handler.addFilter(RequestIdFilter())  # as `courtyard serve` does in production
    at = "@" if userinfo else ""
    url = f"smtp://{userinfo}{at}127.0.0.1:{free_port()}"
    async with auth_app(mail={"smtp_url": url}) as auth:
        ann = await auth.signup("ann@example.com")  # its verification mail fails too
        caplog.clear()

        response = await request_reset(auth, "ann@example.com")

        assert_accepted(response, ACCEPTED)
        request_id = response.headers["x-request-id"]
        [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert failure.request_id == request_id  # type: ignore[attr-defined]
        assert failure.exc_info is not None
        line = logging.Formatter(LOG_FORMAT).format(failure)
        assert f"[request_id={request_id}]" in line
        assert SMTP_PASSWORD not in caplog.text
        assert SMTP_PASSWORD_IN_URL not in caplog.text

        caplog.clear()
        verify = await request_verification(auth, ann)
        assert verify.status_code == 202, verify.text
        [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert failure.request_id == verify.headers["x-request-id"]  # type: ignore[attr-defined]
        await signed_in(auth, "ann@example.com", PASSWORD)  # the app carries on


# Outbox


def outbox_mails(folder: Path) -> list[tuple[Path, EmailMessage]]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        mails.append((path, message))
    return mails


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_the_outbox_keeps_each_mail_as_a_file_and_logs_where_not_what(
    auth_app: AuthAppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops a developer without a mail server being unable to follow a reset link (the
    mail is written to the outbox folder, made if missing, and the log says where), and
    stops the link's token reaching the log: a log line is read by more people, and kept
    longer, than a mailbox. The whole flow is logged at every level and searched."""
    caplog.set_level(logging.DEBUG)
    outbox = tmp_path / "outbox" / "auth"
    async with auth_app(mail={"outbox": str(outbox)}, frontend_url="http://localhost:5173") as auth:
        await auth.signup("ann@example.com")

        assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)
        [(path, message)] = [m for m in outbox_mails(outbox) if m[1]["Subject"] == RESET_SUBJECT]
        assert message["To"] == "ann@example.com"
        assert message["From"] == "Courtyard <no-reply@localhost>"
        text = body_of(message)
        token = token_in(text)
        assert f"http://localhost:5173/reset-password?token={token}" in text
        assert (await confirm_reset(auth, token, NEW_PASSWORD)).status_code == 204
        [verify] = [m for _, m in outbox_mails(outbox) if m["Subject"] == VERIFY_SUBJECT]
        verification = token_in(body_of(verify))

    [written] = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert "ann@example.com" in written
    assert RESET_SUBJECT in written
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (token, verification):
        assert secret not in logged
        assert quote(secret) not in logged


async def test_the_development_outbox_is_var_mail(auth_app: AuthAppFactory, tmp_path: Path) -> None:
    """Stops `make run` in development mailing nothing by default."""
    async with auth_app(core={"env": "development"}) as auth:
        await auth.signup("ann@example.com")

        [(_, message)] = outbox_mails(tmp_path / "var" / "mail")  # the working directory's

        assert message["Subject"] == VERIFY_SUBJECT
        token = token_in(body_of(message))
        assert (await confirm_verification(auth, token)).status_code == 204


async def test_with_no_transport_a_request_is_accepted_and_the_mail_logged_as_not_sent(
    auth: AuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops a request failing for want of mail, and the mail that went nowhere going
    unnoticed. Sign-up sends no verification mail then (nothing would deliver it)."""
    caplog.set_level(logging.WARNING, logger="courtyard.mail")
    await auth.signup("ann@example.com")

    assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

    [warning] = [r for r in caplog.records if r.name == "courtyard.mail"]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("auth.password_reset mail to ann@example.com not sent")
    assert "COURTYARD_MAIL__SMTP_URL" in warning.getMessage()


# The deliver_mail hook


def add_plugin(auth: AuthApp, name: str, implementation: Any) -> None:
    """Register `implementation` on the running app's plugin manager, as a plugin's hooks
    are registered at start-up (no installed distribution needed for one hook)."""
    auth.app.state.plugin_manager.register(implementation, name=name)


@pytest.mark.parametrize("kind", [SyncMailApi, AsyncMailApi])
async def test_another_plugin_delivering_mail_takes_it_before_smtp(
    auth_app: AuthAppFactory, mail_server: MailServer, kind: type[SyncMailApi]
) -> None:
    """Stops the mail plugin's transport overriding a deployment's own mail plugin (an
    email API, a queue) for auth's mails: the transport is the last resort."""
    async with auth_app(mail={"smtp_url": mail_server.url()}) as auth:
        api = kind(takes=True)
        add_plugin(auth, "mailapi", api)
        await auth.signup("ann@example.com")

        await request_reset(auth, "ann@example.com")

        assert mail_server.inbox == []
        assert [(m.to, m.tag, m.subject) for m in api.received] == [
            ("ann@example.com", "auth.verify_email", VERIFY_SUBJECT),
            ("ann@example.com", "auth.password_reset", RESET_SUBJECT),
        ]
        token = token_in(api.received[-1].text)
        assert (await confirm_reset(auth, token, NEW_PASSWORD)).status_code == 204


async def test_a_mail_plugin_alone_counts_as_mail_configured(
    auth: AuthApp,
) -> None:
    """Stops sign-up skipping the verification mail where mail goes through another plugin
    and the mail plugin has no transport of its own."""
    api = SyncMailApi(takes=True)
    add_plugin(auth, "mailapi", api)

    await auth.signup("ann@example.com")

    assert [(m.to, m.tag) for m in api.received] == [("ann@example.com", "auth.verify_email")]
