"""Mail as the core knows it: a message, and delivery through the `deliver_mail` hook.

The core sends nothing itself. A plugin that needs to mail someone builds a
`MailMessage` and calls `deliver(hooks.deliver_mail, message)`; the first plugin whose
`deliver_mail` accepts it (returns True) sends it. The `auth` plugin ships two transports
(an outbox folder for development and SMTP) as the last resort, so a third-party plugin
(an email API, a queue) takes precedence simply by implementing the hook.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pluggy

from core.hooks import in_plugin_order


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One message to one recipient. `tag` names its kind (`auth.password_reset`) for logs
    and routing; it never carries a secret, while `text` and `html` may (a reset link)."""

    to: str
    subject: str
    text: str
    html: str | None = None
    tag: str = ""
    headers: dict[str, str] = field(default_factory=dict)


async def deliver(caller: pluggy.HookCaller, message: MailMessage) -> str | None:
    """Offer `message` to each `deliver_mail` implementation in turn (sync or async) until
    one accepts it; the accepting plugin's name, or None when nobody did.

    Hook wrappers are skipped: no pluggy hook call is made here for them to wrap, and
    called as plain functions they would return a (truthy) generator, as if they had
    taken the mail."""
    for impl in senders(caller):
        result = impl.function(**{"message": message} if "message" in impl.argnames else {})
        if inspect.isawaitable(result):
            result = await result
        if result:
            return impl.plugin_name
    return None


def senders(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The `deliver_mail` implementations that may take a mail, in the order offered."""
    return [i for i in in_plugin_order(caller) if not (i.wrapper or i.hookwrapper)]
