"""`COURTYARD_MAIL__*`: read from the environment and `[mail]`, checked at startup in one
line that never shows a password; the names `auth` used to read stop startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.kernel import Kernel
from core.settings import ConfigurationError, CoreSettings
from plugins.mail.settings import MailSettings
from plugins.mail.transports import OutboxTransport, SmtpTransport
from tests.conftest import make_settings

SMTP_PASSWORD = "s3cret-sm@tp-pass"
SMTP_PASSWORD_IN_URL = "s3cret-sm%40tp-pass"


def build(tmp_path: Path, plugins: str = "mail", **mail: Any) -> Kernel:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", enabled_plugins=plugins
    )
    return Kernel.build(settings, plugin_settings={"mail": mail} if mail else None)


def from_toml(config: Path, tmp_path: Path, plugins: str) -> CoreSettings:
    return CoreSettings.load(
        config_file=str(config),
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
        enabled_plugins=plugins,
    )


def test_the_defaults() -> None:
    settings = MailSettings()
    assert settings.sender == "Courtyard <no-reply@localhost>"
    assert settings.outbox is None
    assert settings.smtp_url is None
    assert settings.smtp_timeout == 10.0


def test_the_settings_are_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"smtp+starttls://mailer:{SMTP_PASSWORD_IN_URL}@mail.example.com"
    monkeypatch.setenv("COURTYARD_MAIL__SMTP_URL", url)
    monkeypatch.setenv("COURTYARD_MAIL__SENDER", "Notes <notes@example.com>")
    monkeypatch.setenv("COURTYARD_MAIL__OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("COURTYARD_MAIL__SMTP_TIMEOUT", "30")

    kernel = build(tmp_path)

    transport = kernel.container_of("mail").transport()
    assert isinstance(transport, SmtpTransport)
    assert (transport.server.host, transport.server.port) == ("mail.example.com", 587)
    assert (transport.server.username, transport.server.password) == ("mailer", SMTP_PASSWORD)
    assert transport.sender == "Notes <notes@example.com>"
    assert transport.timeout == 30
    assert SMTP_PASSWORD not in repr(kernel.plugin_settings["mail"])


def test_the_settings_are_read_from_the_mail_table(tmp_path: Path) -> None:
    config = tmp_path / "courtyard.toml"
    config.write_text(f'[mail]\noutbox = "{tmp_path / "outbox"}"\nsender = "N <n@example.com>"\n')
    settings = from_toml(config, tmp_path, "mail")

    transport = Kernel.build(settings).container_of("mail").transport()

    assert isinstance(transport, OutboxTransport)
    assert transport.folder == tmp_path / "outbox"
    assert transport.sender == "N <n@example.com>"


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
    with pytest.raises(ConfigurationError) as caught:
        build(tmp_path, smtp_url=smtp_url)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid configuration: COURTYARD_MAIL__SMTP_URL: "), message
    assert reason in message
    assert SMTP_PASSWORD not in message
    assert SMTP_PASSWORD_IN_URL not in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("smtp_timeout", 0, "COURTYARD_MAIL__SMTP_TIMEOUT: Input should be greater than 0"),
        ("smtp_timeout", 121, "COURTYARD_MAIL__SMTP_TIMEOUT: Input should be less than or"),
        ("sender", "x", "COURTYARD_MAIL__SENDER: String should have at least 3 characters"),
    ],
)
def test_a_value_out_of_range_stops_the_app_naming_the_setting(
    tmp_path: Path, setting: str, value: Any, reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        build(tmp_path, **{setting: value})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SMTP_URL", "smtp_url"),
        ("SMTP_TIMEOUT", "smtp_timeout"),
        ("MAIL_FROM", "sender"),
        ("MAIL_OUTBOX", "outbox"),
    ],
)
def test_the_mail_settings_auth_used_to_read_stop_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    """Stops a deployment upgraded without renaming its mail settings quietly sending no
    mail: `COURTYARD_AUTH__SMTP_URL` and the like are now unknown settings of `auth`
    (they are `COURTYARD_MAIL__*`)."""
    monkeypatch.setenv(f"COURTYARD_AUTH__{old}", "smtp://mail.example.com")

    with pytest.raises(ConfigurationError) as caught:
        build(tmp_path, plugins="user,auth,mail")

    message = str(caught.value)
    assert f"unknown setting COURTYARD_AUTH__{old}" in message
    assert f"plugin 'auth' has no setting {old.lower()!r}" in message
    assert new in MailSettings.model_fields


def test_an_smtp_url_left_in_the_auth_table_stops_startup(tmp_path: Path) -> None:
    config = tmp_path / "courtyard.toml"
    config.write_text('[auth]\nsmtp_url = "smtp://mail.example.com"\n')
    settings = from_toml(config, tmp_path, "user,auth,mail")

    with pytest.raises(ConfigurationError, match=r"unknown setting 'smtp_url' in \[auth\]"):
        Kernel.build(settings)
