"""The development outbox (`COURTYARD_MAIL__OUTBOX`, `./var/mail` in development): each
mail an `.eml` file a developer opens, the log saying where and never what; and what
happens with no transport at all."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.plugins.mail.conftest import MailAppFactory, message

SECRET_LINK = "https://app.example.com/reset-password?token=Zm9yLXlvdXItZXllcy1vbmx5"


def outbox_mails(folder: Path) -> list[tuple[Path, EmailMessage]]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        mails.append((path, parsed))
    return mails


def body_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_the_outbox_keeps_each_mail_as_a_file_and_logs_where_not_what(
    mail_app: MailAppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops a developer without a mail server being unable to follow a mailed link (the
    mail is written to the outbox folder, made if missing, and the log says where), and
    stops what the mail carries reaching the log: a log line is read by more people, and
    kept longer, than a mailbox. Logged at every level and searched."""
    caplog.set_level(logging.DEBUG)
    outbox = tmp_path / "outbox" / "mail"
    text = f"Choose a new password here:\n\n{SECRET_LINK}\n"
    async with mail_app(outbox=str(outbox), sender="Notes <notes@example.com>") as app:
        assert app.mailer.configured
        assert await app.mailer.send(message(text=text, tag="auth.password_reset")) is True
        await app.mailer.send(message(to="bob@example.com", subject="Second"))

    [(path, mail), (_, second)] = outbox_mails(outbox)
    assert "auth.password_reset" in path.name
    assert mail["To"] == "ann@example.com"
    assert mail["From"] == "Notes <notes@example.com>"
    assert mail["Subject"] == "Your export is ready"
    assert body_of(mail) == text
    assert second["To"] == "bob@example.com"
    [written] = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert "ann@example.com" in written
    assert "Your export is ready" in written
    assert f"mail is delivered through the outbox folder {outbox}" in caplog.text
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "Zm9yLXlvdXItZXllcy1vbmx5" not in logged


async def test_the_development_outbox_is_var_mail(mail_app: MailAppFactory, tmp_path: Path) -> None:
    """Stops `make run` in development mailing nothing by default."""
    async with mail_app(core={"env": "development"}) as app:
        await app.mailer.send(message())

    [(_, mail)] = outbox_mails(tmp_path / "var" / "mail")  # the working directory's
    assert mail["Subject"] == "Your export is ready"


@pytest.mark.parametrize("env", ["test", "production"])
async def test_without_a_transport_nothing_is_sent_and_each_mail_is_logged_as_not_sent(
    mail_app: MailAppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, env: str
) -> None:
    """Stops mail landing in a folder nobody reads outside development, and a mail that
    went nowhere going unnoticed."""
    caplog.set_level(logging.INFO, logger="courtyard.mail")
    core = {"env": env, "secret_key": "a-production-secret-" + "x1y2z3w4v5u6t7s8r9q0"}
    async with mail_app(core=core) as app:
        assert not app.mailer.configured
        assert await app.mailer.send(message()) is False

    assert not (tmp_path / "var").exists()
    startup, warning = [r for r in caplog.records if r.name == "courtyard.mail"]
    assert startup.levelno == logging.INFO
    assert "no mail transport" in startup.getMessage()
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "tests.export mail to ann@example.com not sent: no mail transport (set "
        "COURTYARD_MAIL__SMTP_URL, or enable a plugin implementing deliver_mail)"
    )
