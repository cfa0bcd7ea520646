"""The mailer other plugins send through (`api.Mailer`): the plugins implementing
`deliver_mail` first, then this plugin's own transport."""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from core.hooks import call_hook, in_plugin_order
from plugins.mail.api import MailMessage
from plugins.mail.transports import MailTransport

logger = logging.getLogger("courtyard.mail")


def senders(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The `deliver_mail` implementations that may take a mail, in the order offered (hook
    wrappers are never offered one)."""
    return [i for i in in_plugin_order(caller) if not (i.wrapper or i.hookwrapper)]


class MailService:
    """Implements `api.Mailer`. `hooks` is the app's hook relay; `transport` this plugin's
    SMTP or outbox transport, or None when neither is configured."""

    def __init__(self, hooks: Any, transport: MailTransport | None) -> None:
        self.hooks = hooks
        self.transport = transport

    @property
    def configured(self) -> bool:
        return self.transport is not None or bool(senders(self.hooks.deliver_mail))

    async def send(self, message: MailMessage) -> bool:
        # Each implementation is offered the mail in turn (sync or async, awaited before the
        # next); the first to return a true value has taken it.
        taken: tuple[str, object] | None = await call_hook(
            self.hooks.deliver_mail, accept=bool, named=True, message=message
        )
        if taken is not None:
            logger.debug("mail %s to %s delivered by plugin %r", message.tag, message.to, taken[0])
            return True
        if self.transport is None:
            logger.warning(
                "%s mail to %s not sent: no mail transport (set COURTYARD_MAIL__SMTP_URL, or "
                "enable a plugin implementing deliver_mail)",
                message.tag or "untagged",
                message.to,
            )
            return False
        await self.transport.send(message)
        return True
