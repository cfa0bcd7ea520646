"""The SMTP transport (`COURTYARD_MAIL__SMTP_URL`): what the server receives, over TLS as
the URL asks, and what happens when it cannot be reached or refuses.

The server is real, in the test process (aiosmtpd). The mailer raises what the transport
raises: the plugin that asked for the mail decides how to log it (`auth` does so after
the response, with the request id).
"""

from __future__ import annotations

import logging
import ssl
import time
import traceback
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.plugins.mail.conftest import MailAppFactory, message
from tests.plugins.mail.smtp_support import (
    MailServer,
    PlainAuthenticator,
    free_port,
    self_signed_certificate,
    smtp_server,
)

# aiosmtpd warns that AUTH without TLS is unsafe: true, and beside the point of these tests.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SMTP_PASSWORD = "s3cret-sm@tp-pass"
SMTP_PASSWORD_IN_URL = "s3cret-sm%40tp-pass"


def written_out(exc: BaseException) -> str:
    """The exception as a log line with its traceback would show it."""
    return "".join(traceback.format_exception(exc))


async def test_a_message_reaches_the_smtp_server_as_it_was_sent(
    mail_app: MailAppFactory, mail_server: MailServer
) -> None:
    """Stops a mail that arrives malformed, from the wrong sender, or without its HTML
    alternative or headers."""
    async with mail_app(
        smtp_url=mail_server.url(), sender="Courtyard Support <support@example.com>"
    ) as app:
        sent = await app.mailer.send(
            message(html="<p>Hello Ann</p>", headers={"X-Campaign": "exports"})
        )

    assert sent is True
    [mail] = mail_server.inbox
    assert mail.mail_from == "support@example.com"
    assert mail.rcpt_tos == ["ann@example.com"]
    assert parseaddr(mail["From"]) == ("Courtyard Support", "support@example.com")
    assert mail["To"] == "ann@example.com"
    assert mail["Subject"] == "Your export is ready"
    assert mail["Date"]
    assert mail["Message-ID"]
    assert mail["X-Campaign"] == "exports"
    assert mail.text == "Hello Ann,\n\nyour export is ready.\n"
    assert mail.html is not None
    assert "<p>Hello Ann</p>" in mail.html
    assert not mail.encrypted  # smtp:// without STARTTLS on offer and no password: plain


async def test_smtp_wins_over_the_outbox(
    mail_app: MailAppFactory, mail_server: MailServer, tmp_path: Path
) -> None:
    async with mail_app(smtp_url=mail_server.url(), outbox=str(tmp_path / "outbox")) as app:
        await app.mailer.send(message())

    assert len(mail_server.inbox) == 1
    assert not (tmp_path / "outbox").exists()


async def test_the_startup_log_names_the_server_never_the_password(
    mail_app: MailAppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops an operator wondering where mail goes, and the answer leaking the password."""
    caplog.set_level(logging.DEBUG)
    url = f"smtps://mailer:{SMTP_PASSWORD_IN_URL}@mail.example.com"
    async with mail_app(smtp_url=url):
        pass

    [line] = [r.getMessage() for r in caplog.records if r.name == "courtyard.mail"]
    assert line == "mail is delivered through the SMTP server mail.example.com:465"
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert SMTP_PASSWORD not in logged
    assert SMTP_PASSWORD_IN_URL not in logged


@AUTH_WITHOUT_TLS
@pytest.mark.parametrize(
    ("scheme", "implicit_tls"),
    [("smtp+starttls", False), ("smtp", False), ("smtps", True)],
)
async def test_mail_and_credentials_go_over_tls_as_the_url_asks(
    mail_app: MailAppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    scheme: str,
    implicit_tls: bool,
) -> None:
    """Stops mail (a reset link) and the SMTP password crossing the network in the clear
    when the server offers encryption: STARTTLS for smtp+starttls:// (and for smtp:// when
    offered), TLS from the first byte for smtps://. The server requires AUTH (as hosted
    relays do), and refuses it before STARTTLS: the URL's user and percent-encoded password
    log in. Nothing logged holds the password."""
    caplog.set_level(logging.DEBUG)
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
        async with mail_app(smtp_url=url) as app:
            assert await app.mailer.send(message()) is True

        [mail] = server.inbox
        assert mail.encrypted
        assert mail.auth_login == "mailer"
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert SMTP_PASSWORD not in logged
    assert SMTP_PASSWORD_IN_URL not in logged


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
async def test_a_server_whose_certificate_is_not_trusted_gets_nothing(
    mail_app: MailAppFactory, tmp_path: Path, scheme: str
) -> None:
    """Stops a man in the middle with a certificate of their own reading the mail."""
    _, context = self_signed_certificate(tmp_path)  # not trusted: SSL_CERT_FILE not set
    tls: dict[str, Any] = (
        {"ssl_context": context}
        if scheme == "smtps"
        else {"tls_context": context, "require_starttls": True}
    )
    with smtp_server(**tls) as server:
        async with mail_app(smtp_url=server.url(scheme=scheme)) as app:
            with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError)) as caught:
                await app.mailer.send(message())

        assert server.inbox == []
    assert "CERTIFICATE_VERIFY_FAILED" in written_out(caught.value)


async def test_starttls_required_by_the_url_is_not_skipped_when_the_server_lacks_it(
    mail_app: MailAppFactory, mail_server: MailServer
) -> None:
    """Stops a downgrade: with smtp+starttls:// a server (or a man in the middle) that
    does not offer STARTTLS gets no mail rather than a mail in the clear."""
    async with mail_app(smtp_url=mail_server.url(scheme="smtp+starttls")) as app:
        with pytest.raises(aiosmtplib.SMTPException):
            await app.mailer.send(message())

    assert mail_server.inbox == []


@AUTH_WITHOUT_TLS
async def test_a_password_in_smtp_url_is_never_sent_in_the_clear(
    mail_app: MailAppFactory,
) -> None:
    """smtp:// upgrades only when STARTTLS is offered; with a password to send it insists,
    so a server (or a man in the middle hiding the offer) that would take AUTH in the
    clear gets neither the password nor the mail."""
    authenticator = PlainAuthenticator("mailer", SMTP_PASSWORD)
    with smtp_server(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as server:
        async with mail_app(smtp_url=server.url(f"mailer:{SMTP_PASSWORD_IN_URL}")) as app:
            with pytest.raises(aiosmtplib.SMTPException) as caught:
                await app.mailer.send(message())

        assert server.inbox == []
        assert authenticator.attempts == []
    assert SMTP_PASSWORD not in written_out(caught.value)


@AUTH_WITHOUT_TLS
async def test_wrong_smtp_credentials_fail_without_showing_the_password(
    mail_app: MailAppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, context = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    authenticator = PlainAuthenticator("mailer", "the right password")
    with smtp_server(
        authenticator=authenticator,
        auth_required=True,
        ssl_context=context,
        auth_require_tls=False,
    ) as server:
        url = server.url(f"mailer:{SMTP_PASSWORD_IN_URL}", scheme="smtps")
        async with mail_app(smtp_url=url) as app:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
                await app.mailer.send(message())

        assert server.inbox == []
        assert set(authenticator.attempts) == {"mailer"}  # one try per mechanism offered
    shown = written_out(caught.value)
    assert SMTP_PASSWORD not in shown
    assert SMTP_PASSWORD_IN_URL not in shown


@pytest.mark.parametrize("userinfo", ["", f"mailer:{SMTP_PASSWORD_IN_URL}@"])
async def test_a_mail_server_that_is_down_fails_the_send_at_once_without_the_password(
    mail_app: MailAppFactory, userinfo: str
) -> None:
    """Stops a mail outage going unnoticed (the caller gets the error to log) or hanging
    (a refused connection fails at once), and the password reaching that error."""
    async with mail_app(smtp_url=f"smtp://{userinfo}127.0.0.1:{free_port()}") as app:
        started = time.monotonic()
        with pytest.raises(aiosmtplib.SMTPConnectError) as caught:
            await app.mailer.send(message())

    assert time.monotonic() - started < 5
    shown = written_out(caught.value)
    assert SMTP_PASSWORD not in shown
    assert SMTP_PASSWORD_IN_URL not in shown
