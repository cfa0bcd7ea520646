"""The `auth` plugin's own mail transports, used when no other plugin delivers mail.

- Outbox (development): each message is written as an `.eml` file to a folder, so a
  developer opens the link without any mail server; the log says where.
- SMTP: handed to a server over an async client, with STARTTLS or TLS as the URL says.

Neither logs a message's body: a mail carries one-time tokens (password reset, email
verification), and log lines are read by more people, and kept longer, than a mailbox.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import anyio

from core.mail import MailMessage, deliver, senders
from plugins.auth.settings import AuthSettings
from plugins.auth.smtp_url import SmtpServer, parse_smtp_url

logger = logging.getLogger("courtyard.auth.mail")


def to_email(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain="courtyard.local")
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    return email


class MailTransport(Protocol):
    async def send(self, message: MailMessage) -> None: ...


class OutboxTransport:
    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, message: MailMessage) -> None:
        email = to_email(message, self.sender)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{message.tag or 'mail'}-{secrets.token_hex(4)}.eml"
        await anyio.Path(self.folder).mkdir(parents=True, exist_ok=True)
        await anyio.Path(path).write_bytes(bytes(email))
        logger.info("mail to %s written to the outbox: %s (%s)", message.to, path, message.subject)


class SmtpTransport:
    def __init__(self, url: str, sender: str, timeout: float) -> None:
        self.server: SmtpServer = parse_smtp_url(url)
        self.sender = sender
        self.timeout = timeout

    async def send(self, message: MailMessage) -> None:
        server = self.server
        # `smtp://` upgrades with STARTTLS when the server offers it; with credentials it
        # insists, since whoever sits in between could hide the offer and read the password.
        start_tls = {"starttls": True, "tls": False, "auto": True if server.username else None}
        await aiosmtplib.send(
            to_email(message, self.sender),
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.security == "tls",
            start_tls=start_tls[server.security],
            tls_context=ssl.create_default_context(),
            timeout=self.timeout,
        )
        logger.info("mail %s sent to %s through %s", message.tag, message.to, server.host)


class Mailer:
    """Sends through the `deliver_mail` hook: other plugins first, then `fallback` (this
    plugin's outbox or SMTP transport, when one is configured)."""

    def __init__(self, hooks: Any, fallback: MailTransport | None) -> None:
        self.hooks = hooks
        self.fallback = fallback

    @property
    def configured(self) -> bool:
        """Whether a message would go anywhere: our transport, or another plugin's hook."""
        others = [i for i in senders(self.hooks.deliver_mail) if i.plugin_name != "auth"]
        return self.fallback is not None or bool(others)

    async def send(self, message: MailMessage) -> bool:
        by = await deliver(self.hooks.deliver_mail, message)
        if by is None:
            logger.warning(
                "%s mail to %s not sent: no mail transport (set COURTYARD_AUTH__SMTP_URL)",
                message.tag,
                message.to,
            )
        return by is not None


def open_transport(
    outbox: Path | None, smtp_url: str | None, sender: str, timeout: float
) -> MailTransport | None:
    """SMTP when configured, else the outbox when there is one, else nothing."""
    if smtp_url:
        return SmtpTransport(smtp_url, sender, timeout)
    if outbox is not None:
        return OutboxTransport(outbox, sender)
    return None


def transport_from(settings: AuthSettings, env: str) -> MailTransport | None:
    """The transport the settings choose: SMTP when `smtp_url` is set, else the outbox
    (`mail_outbox`, or ./var/mail in development), else none."""
    outbox = settings.mail_outbox or (Path("var/mail") if env == "development" else None)
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    return open_transport(outbox, smtp_url, settings.mail_from, settings.smtp_timeout)
