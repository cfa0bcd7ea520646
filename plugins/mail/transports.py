"""The `mail` plugin's own transports, used when no plugin's `deliver_mail` takes a mail.

- Outbox (development): each message is written as an `.eml` file to a folder, so a
  developer opens the link without any mail server; the log says where.
- SMTP: handed to a server over an async client, with STARTTLS or TLS as the URL says.

Neither logs a message's body: a mail may carry one-time tokens (password reset, email
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
from typing import Protocol

import aiosmtplib
import anyio

from plugins.mail.api import MailMessage
from plugins.mail.settings import MailSettings
from plugins.mail.smtp_url import SmtpServer, parse_smtp_url

logger = logging.getLogger("courtyard.mail")

DEVELOPMENT_OUTBOX = Path("var/mail")  # relative to the working directory


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

    def describe(self) -> str:
        """Where mail goes, for the log; never a credential."""
        ...


class OutboxTransport:
    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def describe(self) -> str:
        return f"the outbox folder {self.folder}"

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

    def describe(self) -> str:
        return f"the SMTP server {self.server.host}:{self.server.port}"

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


def transport_from(settings: MailSettings, env: str) -> MailTransport | None:
    """The transport the settings choose: SMTP when `smtp_url` is set, else the outbox
    (`outbox`, or ./var/mail in development), else none."""
    if settings.smtp_url is not None:
        return SmtpTransport(
            settings.smtp_url.get_secret_value(), settings.sender, settings.smtp_timeout
        )
    outbox = settings.outbox or (DEVELOPMENT_OUTBOX if env == "development" else None)
    if outbox is not None:
        return OutboxTransport(outbox, settings.sender)
    return None
