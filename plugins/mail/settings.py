from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from core.settings import PluginSettings
from plugins.mail.smtp_url import parse_smtp_url


class MailSettings(PluginSettings):
    """`COURTYARD_MAIL__*`, or the `[mail]` table of `courtyard.toml`.

    The transport is SMTP when `smtp_url` is set, else the outbox folder (`outbox`, or
    ./var/mail when COURTYARD_ENV is `development`), else none.
    """

    sender: str = Field(
        "Courtyard <no-reply@localhost>",
        min_length=3,
        description="Sender of every mail: its From header and the SMTP envelope sender.",
    )
    outbox: Path | None = Field(
        None,
        description="Folder the development transport writes each mail to (and logs it). "
        "Unset: ./var/mail in development, off otherwise.",
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://[user:password@]host[:port] (STARTTLS when the server offers "
        "it, required when a user is given), smtp+starttls://… (STARTTLS required) or "
        "smtps://… (TLS from the start).",
    )
    smtp_timeout: float = Field(10.0, gt=0, le=120, description="Seconds per SMTP exchange.")

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())  # raises ValueError without the password
        return value
