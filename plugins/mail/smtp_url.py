"""`COURTYARD_MAIL__SMTP_URL`, parsed: where and how to hand mail to an SMTP server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

_SCHEMES: dict[str, tuple[Literal["auto", "starttls", "tls"], int]] = {
    "smtp": ("auto", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    security: Literal["auto", "starttls", "tls"]
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or a log


def parse_smtp_url(url: str) -> SmtpServer:
    """The server `url` names; ValueError (never echoing the password) when malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a URL such as smtp://user:password@host:587") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in _SCHEMES)}")
    if not parts.hostname:
        raise ValueError("names no host")
    security, default_port = _SCHEMES[parts.scheme]
    return SmtpServer(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
