"""An app with the `mail` plugin alone, its mailer, and a real SMTP server to send to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.hookspecs import hookimpl
from plugins.mail.api import MailMessage
from tests.conftest import AppFactory
from tests.plugins.mail.smtp_support import MailServer, smtp_server

PLUGINS = "mail"


def message(**fields: Any) -> MailMessage:
    """A message to ann@example.com; `fields` replace any part of it."""
    values: dict[str, Any] = {
        "to": "ann@example.com",
        "subject": "Your export is ready",
        "text": "Hello Ann,\n\nyour export is ready.\n",
        "tag": "tests.export",
        **fields,
    }
    return MailMessage(**values)


@dataclass
class MailApp:
    client: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    @property
    def container(self) -> Any:
        return self.app.state.kernel.container_of("mail")

    @property
    def mailer(self) -> Any:
        """The `plugins.mail.api.Mailer` other plugins get as `mail_mailer`."""
        return self.container.mailer()

    def add_plugin(self, name: str, implementation: Any) -> None:
        """Register `implementation` on the running app's plugin manager, as a plugin's hooks
        are registered at start-up (no installed distribution needed for one hook)."""
        self.app.state.plugin_manager.register(implementation, name=name)


MailAppFactory = Callable[..., AbstractAsyncContextManager[MailApp]]


@pytest.fixture
def mail_app(app_client: AppFactory) -> MailAppFactory:
    """`async with mail_app(smtp_url=...) as app:` — `mail` settings as keywords;
    `core={...}` for core settings. Running."""

    @asynccontextmanager
    async def factory(*, core: dict[str, Any] | None = None, **mail: Any) -> AsyncIterator[MailApp]:
        options = {"enabled_plugins": PLUGINS, **(core or {})}
        async with app_client(plugin_settings={"mail": mail}, **options) as client:
            yield MailApp(client)

    return factory


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port, keeping what it receives."""
    with smtp_server() as server:
        yield server


class SyncMailApi:
    """A third-party `deliver_mail` (an email API): takes every mail when `takes`."""

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
