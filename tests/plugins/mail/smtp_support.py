"""A real SMTP server in the test process (aiosmtpd), and what it received.

The server runs in aiosmtpd's own thread on a free 127.0.0.1 port. Its handler keeps every
message it accepts, parsed; since an SMTP client only returns once the server has answered
the DATA command, a message the app sent is in `inbox` by the time the app's call is over.
Used by the `mail` plugin's tests and by the tests of plugins that send mail (`auth`).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Delivered:
    """One message as the SMTP server received it: envelope and parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    auth_login: str | None = None
    encrypted: bool = False

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None, self.message
        return str(body.get_content()).replace("\r\n", "\n")  # SMTP's line ends

    @property
    def html(self) -> str | None:
        body = self.message.get_body(preferencelist=("html",))
        return None if body is None else str(body.get_content()).replace("\r\n", "\n")

    def __getitem__(self, header: str) -> str:
        value = self.message[header]
        return "" if value is None else str(value)


@dataclass
class Collector:
    """aiosmtpd handler: keeps each message it is given (and `on_mail` hears of it)."""

    inbox: list[Delivered] = field(default_factory=list)
    on_mail: Callable[[Delivered], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.login_data.decode() if session.authenticated else None
        # STARTTLS leaves its mark on the session; TLS from the start on the transport.
        encrypted = session.ssl is not None or (
            server.transport.get_extra_info("ssl_object") is not None
        )
        delivered = Delivered(
            envelope.mail_from, list(envelope.rcpt_tos), message, login, encrypted
        )
        with self.lock:
            self.inbox.append(delivered)
        if self.on_mail is not None:
            self.on_mail(delivered)
        return "250 Message accepted for delivery"


@dataclass
class MailServer:
    host: str
    port: int
    collector: Collector

    @property
    def inbox(self) -> list[Delivered]:
        return self.collector.inbox

    def url(self, userinfo: str = "", scheme: str = "smtp") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}{self.host}:{self.port}"

    def to(self, address: str, subject: str | None = None) -> list[Delivered]:
        """The messages received for `address` (with `subject`, if given)."""
        return [
            mail
            for mail in self.inbox
            if address in mail.rcpt_tos and subject in (None, mail["Subject"])
        ]

    def with_subject(self, subject: str) -> list[Delivered]:
        return [mail for mail in self.inbox if mail["Subject"] == subject]

    def only_mail_to(self, address: str) -> Delivered:
        mails = self.to(address)
        assert len(mails) == 1, [(m.rcpt_tos, m["Subject"]) for m in self.inbox]
        return mails[0]


def free_port() -> int:
    """A TCP port nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PlainAuthenticator:
    """An aiosmtpd authenticator accepting exactly one login, and recording every login
    name it was offered (to prove a password was never sent)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.attempts: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        self.attempts.append(login)
        ok = (
            isinstance(auth_data, LoginPassword)
            and login == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def self_signed_certificate(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 (its PEM file, for clients to trust) and a server-side
    TLS context presenting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


@contextmanager
def smtp_server(**smtp_options: Any) -> Iterator[MailServer]:
    """A running aiosmtpd server collecting what it receives; options go to aiosmtpd's SMTP
    (e.g. `authenticator=…, auth_require_tls=False, auth_required=True`)."""
    collector = Collector()
    host, port = "127.0.0.1", free_port()
    controller = Controller(collector, hostname=host, port=port, **smtp_options)
    controller.start()
    try:
        yield MailServer(host, port, collector)
    finally:
        controller.stop()
