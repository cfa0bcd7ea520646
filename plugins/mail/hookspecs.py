"""The hook the `mail` plugin publishes: implement `deliver_mail` to deliver mail yourself.

A plugin that sends mail its own way (an HTTP email API, a queue) implements it with
`@hookimpl` and lists `"mail"` in its `requires` (or marks the implementation
`@hookimpl(optionalhook=True)`). Every mail any plugin sends through the mailer is offered
to the implementations in plugin order; the mail plugin's own transport (SMTP, the outbox)
is the last resort, used only when none of them takes the message.
"""

from __future__ import annotations

from collections.abc import Awaitable

from core.hookspecs import hookspec
from plugins.mail.api import MailMessage


@hookspec(firstresult=True)
def deliver_mail(message: MailMessage) -> Awaitable[bool | None] | bool | None:
    """Send `message` and return True, or None to let the next plugin try (may be async).

    The mailer calls it (`plugins.mail.api.Mailer.send`), awaiting async implementations in
    turn; hook wrappers are not called.
    """
