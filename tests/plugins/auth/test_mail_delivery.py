"""How the `auth` plugin's mail leaves the app: through the `deliver_mail` hook, to another
plugin first, else to SMTP (`COURTYARD_AUTH__SMTP_URL`) or the development outbox folder.

Sending happens after the answer, so a mail server that is down costs the user nothing and
shows up in the log, with the id of the request that asked for the mail. SMTP is a real
server in the test process (aiosmtpd).
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

from core.hookspecs import hookimpl
from core.kernel import Kernel
from core.logging import LOG_FORMAT, RequestIdFilter
from core.mail import MailMessage
from core.settings import ConfigurationError
from tests.conftest import make_settings
from tests.plugins.auth.conftest import (
    NEW_PASSWORD,
    PASSWORD,
    PLUGINS,
    AuthApp,
    AuthAppFactory,
)
from tests.plugins.auth.mail_support import (
    RESET_SUBJECT,
    VERIFY_SUBJECT,
    MailServer,
    PlainAuthenticator,
    assert_accepted,
    confirm_reset,
    confirm_verification,
    free_port,
    request_reset,
    request_verification,
    self_signed_certificate,
    smtp_server,
    token_in,
)

ACCEPTED = "If an account with that email exists"
# aiosmtpd warns that AUTH without TLS is unsafe: true, and beside the point of these tests.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
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
        smtp_url=mail_server.url(),
        mail_from="Courtyard Support <support@example.com>",
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
    async with auth_app(smtp_url=mail_server.url()) as auth:
        await auth.signup("ann@example.com")

        await request_reset(auth, "ann@example.com")

        [mail] = mail_server.with_subject(RESET_SUBJECT)
        token = token_in(mail)
        assert f"POST /api/v1/auth/password-reset/confirm:\n\n{token}\n" in mail.text
        assert "http" not in mail.text
        assert (await confirm_reset(auth, token, NEW_PASSWORD)).status_code == 204


@AUTH_WITHOUT_TLS
@pytest.mark.parametrize(
    ("scheme", "implicit_tls"),
    [("smtp+starttls", False), ("smtp", False), ("smtps", True)],
)
async def test_mail_and_credentials_go_over_tls_as_the_url_asks(
    auth_app: AuthAppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    implicit_tls: bool,
) -> None:
    """Stops mail (a reset link) and the SMTP password crossing the network in the clear
    when the server offers encryption: STARTTLS for smtp+starttls:// (and for smtp:// when
    offered), TLS from the first byte for smtps://. The server requires AUTH (as hosted
    relays do), and refuses it before STARTTLS: the URL's user and percent-encoded password
    log in."""
    cert, context = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    # aiosmtpd offers AUTH only after STARTTLS unless told otherwise: with TLS from the
    # start it does not know the connection is encrypted (`encrypted` below proves it).
    tls: dict[str, Any] = (
        {"ssl_context": context, "auth_require_tls": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True}
    )
    authenticator = PlainAuthenticator("mailer", SMTP_PASSWORD)
    with smtp_server(authenticator=authenticator, auth_required=True, **tls) as server:
        url = server.url(f"mailer:{SMTP_PASSWORD_IN_URL}", scheme=scheme)
        async with auth_app(smtp_url=url) as auth:
            await auth.signup("ann@example.com")

            await request_reset(auth, "ann@example.com")

            [mail] = server.with_subject(RESET_SUBJECT)
            assert mail.encrypted
            assert mail.auth_login == "mailer"
            assert (await confirm_reset(auth, token_in(mail), NEW_PASSWORD)).status_code == 204


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
async def test_a_server_whose_certificate_is_not_trusted_gets_nothing(
    auth_app: AuthAppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, scheme: str
) -> None:
    """Stops a man in the middle with a certificate of their own reading the mail."""
    caplog.set_level(logging.ERROR)
    _, context = self_signed_certificate(tmp_path)  # not trusted: SSL_CERT_FILE not set
    tls: dict[str, Any] = (
        {"ssl_context": context}
        if scheme == "smtps"
        else {"tls_context": context, "require_starttls": True}
    )
    with smtp_server(**tls) as server:
        async with auth_app(smtp_url=server.url(scheme=scheme)) as auth:
            await auth.signup("ann@example.com")
            caplog.clear()

            assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

            assert server.inbox == []
            [failure] = [r for r in caplog.records if r.name == "courtyard.auth"]
            assert failure.levelno == logging.ERROR
            assert failure.exc_info is not None
            assert "CERTIFICATE_VERIFY_FAILED" in str(failure.exc_info[1])


async def test_starttls_required_by_the_url_is_not_skipped_when_the_server_lacks_it(
    auth_app: AuthAppFactory, mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops a downgrade: with smtp+starttls:// a server (or a man in the middle) that
    does not offer STARTTLS gets no mail rather than a mail in the clear."""
    caplog.set_level(logging.ERROR)
    async with auth_app(smtp_url=mail_server.url(scheme="smtp+starttls")) as auth:
        await auth.signup("ann@example.com")

        assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

        assert mail_server.inbox == []
        assert [r for r in caplog.records if r.levelno == logging.ERROR], caplog.text


@AUTH_WITHOUT_TLS
async def test_a_password_in_smtp_url_is_never_sent_in_the_clear(
    auth_app: AuthAppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """smtp:// upgrades only when STARTTLS is offered; with a password to send it insists,
    so a server (or a man in the middle hiding the offer) that would take AUTH in the
    clear gets neither the password nor the mail."""
    authenticator = PlainAuthenticator("mailer", SMTP_PASSWORD)
    caplog.set_level(logging.ERROR)
    with smtp_server(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as server:
        async with auth_app(smtp_url=server.url(f"mailer:{SMTP_PASSWORD_IN_URL}")) as auth:
            await auth.signup("ann@example.com")

            assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

            assert server.inbox == []
            assert [r for r in caplog.records if r.levelno == logging.ERROR], caplog.text
            assert authenticator.attempts == []


@AUTH_WITHOUT_TLS
async def test_wrong_smtp_credentials_are_logged_without_the_password(
    auth_app: AuthAppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, context = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    authenticator = PlainAuthenticator("mailer", "the right password")
    caplog.set_level(logging.ERROR)
    with smtp_server(
        authenticator=authenticator,
        auth_required=True,
        ssl_context=context,
        auth_require_tls=False,
    ) as server:
        url = server.url(f"mailer:{SMTP_PASSWORD_IN_URL}", scheme="smtps")
        async with auth_app(smtp_url=url) as auth:
            await auth.signup("ann@example.com")

            response = await request_reset(auth, "ann@example.com")

            assert_accepted(response, ACCEPTED)
            assert server.inbox == []
            failures = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert failures, caplog.text
            logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)
            assert SMTP_PASSWORD not in logged
            assert SMTP_PASSWORD_IN_URL not in logged


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
    async with auth_app(smtp_url=f"smtp://{userinfo}{at}127.0.0.1:{free_port()}") as auth:
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
    async with auth_app(mail_outbox=str(outbox), frontend_url="http://localhost:5173") as auth:
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
    caplog.set_level(logging.WARNING, logger="courtyard.auth.mail")
    await auth.signup("ann@example.com")

    assert_accepted(await request_reset(auth, "ann@example.com"), ACCEPTED)

    [warning] = [r for r in caplog.records if r.name == "courtyard.auth.mail"]
    assert warning.levelno == logging.WARNING
    assert "not sent" in warning.getMessage()
    assert "COURTYARD_AUTH__SMTP_URL" in warning.getMessage()


# The deliver_mail hook


def add_plugin(auth: AuthApp, name: str, implementation: Any) -> None:
    """Register `implementation` on the running app's plugin manager, as a plugin's hooks
    are registered at start-up (no installed distribution needed for one hook)."""
    auth.app.state.plugin_manager.register(implementation, name=name)


class SyncMailApi:
    def __init__(self, takes: bool) -> None:
        self.takes = takes
        self.received: list[MailMessage] = []

    @hookimpl
    def deliver_mail(self, message: MailMessage) -> bool | None:
        self.received.append(message)
        return True if self.takes else None


class AsyncMailApi(SyncMailApi):
    @hookimpl
    async def deliver_mail(self, message: MailMessage) -> bool | None:  # type: ignore[override]
        self.received.append(message)
        return True if self.takes else None


@pytest.mark.parametrize("kind", [SyncMailApi, AsyncMailApi])
async def test_another_plugin_delivering_mail_takes_it_before_smtp(
    auth_app: AuthAppFactory, mail_server: MailServer, kind: type[SyncMailApi]
) -> None:
    """Stops the built-in transport overriding a deployment's own mail plugin (an email
    API, a queue): auth's transport is the last resort."""
    async with auth_app(smtp_url=mail_server.url()) as auth:
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


async def test_a_plugin_that_declines_a_mail_leaves_it_to_smtp(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    async with auth_app(smtp_url=mail_server.url()) as auth:
        api = AsyncMailApi(takes=False)
        add_plugin(auth, "mailapi", api)
        await auth.signup("ann@example.com")

        await request_reset(auth, "ann@example.com")

        assert [m.tag for m in api.received] == ["auth.verify_email", "auth.password_reset"]
        assert [m["Subject"] for m in mail_server.inbox] == [VERIFY_SUBJECT, RESET_SUBJECT]


async def test_a_mail_plugin_alone_counts_as_mail_configured(
    auth: AuthApp,
) -> None:
    """Stops sign-up skipping the verification mail where mail goes through another plugin
    and auth has no transport of its own."""
    api = SyncMailApi(takes=True)
    add_plugin(auth, "mailapi", api)

    await auth.signup("ann@example.com")

    assert [(m.to, m.tag) for m in api.received] == [("ann@example.com", "auth.verify_email")]


# Settings


@pytest.mark.parametrize(
    ("smtp_url", "reason"),
    [
        ("ftp://mail.example.com", "must start with one of smtp://, smtp+starttls://, smtps://"),
        (f"smtp://mailer:{SMTP_PASSWORD_IN_URL}@", "names no host"),
        (f"smtps://mailer:{SMTP_PASSWORD_IN_URL}@:465", "names no host"),
        (f"smtp://mailer:{SMTP_PASSWORD_IN_URL}@mail.example.com:port", "is not a URL"),
        (f"smtp://mailer:{SMTP_PASSWORD_IN_URL}@mail.example.com:99999", "is not a URL"),
        (f"mailer:{SMTP_PASSWORD_IN_URL}@mail.example.com", "must start with one of"),
    ],
)
def test_a_bad_smtp_url_stops_the_app_in_one_line_without_the_password(
    tmp_path: Path, smtp_url: str, reason: str
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", enabled_plugins=PLUGINS
    )

    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(settings, plugin_settings={"auth": {"smtp_url": smtp_url}})

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid configuration: COURTYARD_AUTH__SMTP_URL: "), message
    assert reason in message
    assert SMTP_PASSWORD not in message
    assert SMTP_PASSWORD_IN_URL not in message
    assert "s3cret" not in message


class CountingWrapper:
    """A plugin that wraps `deliver_mail` (pluggy's new-style wrapper) to count mail,
    delivering none itself."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def deliver_mail(self, message: MailMessage) -> Any:
        self.calls += 1
        return (yield)


async def test_a_plugin_wrapping_deliver_mail_does_not_swallow_the_mail(
    auth_app: AuthAppFactory, mail_server: MailServer
) -> None:
    """Stops a hook wrapper (a legitimate pluggy implementation, e.g. to count or log mail)
    being taken for a plugin that accepted the mail: the mail must still be sent."""
    async with auth_app(smtp_url=mail_server.url()) as auth:
        add_plugin(auth, "mailcount", CountingWrapper())
        await auth.signup("ann@example.com")

        await request_reset(auth, "ann@example.com")

        assert [m["Subject"] for m in mail_server.inbox] == [VERIFY_SUBJECT, RESET_SUBJECT]
