"""The `deliver_mail` hook: a plugin that delivers mail its own way (an email API, a
queue) takes every mail before the mail plugin's own transport, which is the last resort."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core import hookspecs as core_hookspecs
from core.hooks import spec_names
from core.hookspecs import hookimpl
from plugins.mail import hookspecs as mail_hookspecs
from plugins.mail.api import MailMessage
from plugins.mail.hooks import MailHooks
from tests.plugins.mail.conftest import AsyncMailApi, MailAppFactory, SyncMailApi, message
from tests.plugins.mail.smtp_support import MailServer


class CountingWrapper:
    """A plugin that wraps `deliver_mail` (pluggy's new-style wrapper) to count mail,
    delivering none itself."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def deliver_mail(self, message: MailMessage) -> Any:
        self.calls += 1
        return (yield)


class BrokenMailApi:
    @hookimpl
    async def deliver_mail(self, message: MailMessage) -> bool | None:
        raise ConnectionError("the email API is down")


def test_the_hook_is_the_mail_plugins_not_the_cores() -> None:
    assert spec_names(mail_hookspecs) == ["deliver_mail"]
    assert "deliver_mail" not in spec_names(core_hookspecs)


@pytest.mark.parametrize("kind", [SyncMailApi, AsyncMailApi])
async def test_a_plugin_delivering_mail_takes_it_before_smtp(
    mail_app: MailAppFactory,
    mail_server: MailServer,
    caplog: pytest.LogCaptureFixture,
    kind: type[SyncMailApi],
) -> None:
    """Stops the built-in transport overriding a deployment's own mail plugin."""
    caplog.set_level(logging.DEBUG, logger="courtyard.mail")
    async with mail_app(smtp_url=mail_server.url()) as app:
        api = kind(takes=True)
        app.add_plugin("mailapi", api)
        sent = message(html="<p>Hi</p>", headers={"X-Campaign": "exports"})

        assert await app.mailer.send(sent) is True

    assert mail_server.inbox == []
    assert api.received == [sent]
    assert "delivered by plugin 'mailapi'" in caplog.text


async def test_a_plugin_that_declines_a_mail_leaves_it_to_smtp(
    mail_app: MailAppFactory, mail_server: MailServer
) -> None:
    async with mail_app(smtp_url=mail_server.url()) as app:
        api = AsyncMailApi(takes=False)
        app.add_plugin("mailapi", api)

        assert await app.mailer.send(message()) is True

    assert [m.subject for m in api.received] == ["Your export is ready"]
    assert [m["Subject"] for m in mail_server.inbox] == ["Your export is ready"]


async def test_only_the_first_plugin_to_take_a_mail_gets_it(mail_app: MailAppFactory) -> None:
    """Stops a mail going out twice, once per delivering plugin."""
    async with mail_app() as app:
        first, second = SyncMailApi(takes=True), AsyncMailApi(takes=True)
        app.add_plugin("first", first)
        app.add_plugin("second", second)

        await app.mailer.send(message())

    delivered_by = [api for api in (first, second) if api.received]
    assert len(delivered_by) == 1


async def test_a_plugin_wrapping_deliver_mail_does_not_swallow_the_mail(
    mail_app: MailAppFactory, mail_server: MailServer
) -> None:
    """Stops a hook wrapper (a legitimate pluggy implementation, e.g. to count or log mail)
    being taken for a plugin that accepted the mail: the mail must still be sent."""
    async with mail_app(smtp_url=mail_server.url()) as app:
        wrapper = CountingWrapper()
        app.add_plugin("mailcount", wrapper)

        await app.mailer.send(message())
    assert [m["Subject"] for m in mail_server.inbox] == ["Your export is ready"]
    assert wrapper.calls == 0  # offered to each implementation in turn: no call to wrap


async def test_a_plugin_alone_counts_as_mail_configured(mail_app: MailAppFactory) -> None:
    """Stops a plugin sending mail (auth's verification mail at sign-up) holding back where
    mail goes through another plugin and there is no transport of the mail plugin's own."""
    async with mail_app() as app:
        assert not app.mailer.configured
        app.add_plugin("mailcount", CountingWrapper())
        assert not app.mailer.configured  # a wrapper delivers nothing
        api = SyncMailApi(takes=True)
        app.add_plugin("mailapi", api)

        assert app.mailer.configured
        assert await app.mailer.send(message()) is True
    assert len(api.received) == 1


async def test_a_failing_plugin_fails_the_send_and_the_transport_is_not_tried(
    mail_app: MailAppFactory, mail_server: MailServer
) -> None:
    """The caller hears of the failure (to log it); falling back to SMTP instead could send
    a mail the failing plugin had in fact queued."""
    async with mail_app(smtp_url=mail_server.url()) as app:
        app.add_plugin("broken", BrokenMailApi())

        with pytest.raises(ConnectionError, match="the email API is down"):
            await app.mailer.send(message())

    assert mail_server.inbox == []


async def test_the_startup_log_names_the_delivering_plugins_then_the_transport(
    mail_app: MailAppFactory, mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Plugins implementing the hook at start-up are named before the transport."""
    caplog.set_level(logging.INFO, logger="courtyard.mail")
    async with mail_app(smtp_url=mail_server.url()) as app:
        app.add_plugin("mailapi", SyncMailApi(takes=True))
        MailHooks(app.container).startup(app.app)  # as the app's start would, now

    assert (
        f"mail is delivered by plugin(s) mailapi, else through the SMTP server "
        f"127.0.0.1:{mail_server.port}"
    ) in caplog.text
