"""The `mail` plugin's public surface: the only module other plugins may import.

A plugin that sends mail lists `"mail"` in its `requires` and declares the mailer as an
input of its own container, named `mail_<provider>`; the core connects it:

    class NotesContainer(containers.DeclarativeContainer):
        mail_mailer = providers.Dependency()  # a `Mailer`

and sends a `MailMessage` with it, preferably after the response has been sent (a
background task), so a slow or failing mail server never delays or fails a request:

    sent = await container.mail_mailer().send(
        MailMessage(to=user.email, subject="Your export is ready", text=body, tag="notes.export")
    )

`send` raises what the transport raises (a refused login, a server that is down); catch
and log it where the mail was asked for. A plugin that delivers mail itself (an email API,
a queue) implements the `deliver_mail` hook of `plugins/mail/hookspecs.py` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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


class Mailer(Protocol):
    """Sends mail for other plugins (`mail_mailer`); one per app."""

    @property
    def configured(self) -> bool:
        """Whether a message would go anywhere: a plugin implementing `deliver_mail`, or
        this plugin's transport (SMTP, or the outbox)."""
        ...

    async def send(self, message: MailMessage) -> bool:
        """Offer `message` to each `deliver_mail` implementation in plugin order, then to
        this plugin's transport: True once one took it, False when there is none (logged
        as a warning). What a transport raises reaches the caller."""
        ...
