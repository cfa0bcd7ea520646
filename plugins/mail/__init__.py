"""The `mail` plugin: outgoing mail for every other plugin.

A plugin that needs to mail someone (`auth`: password-reset and verification links) lists
`"mail"` in its `requires`, takes the `mailer` through its container (`mail_mailer`, see
`api.py`) and hands it a `MailMessage`. The mailer offers the message to the plugins
implementing this plugin's `deliver_mail` hook (an email API, a queue) in plugin order and,
when none takes it, sends it with its own transport: SMTP (`COURTYARD_MAIL__SMTP_URL`) or
an outbox folder of `.eml` files (`COURTYARD_MAIL__OUTBOX`; `./var/mail` in development).

It has no routes and no tables. `api` is what other plugins import, `hookspecs` declares
`deliver_mail`, `transports` holds SMTP and the outbox, `service` is the mailer, and
`container` and `hooks` wire it in. Importing this package does nothing: no server is
contacted before the first mail.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="mail",
    package=__name__,
    version="0.1.0",
    core_version=">=0.1,<1",
    description="Outgoing mail: the `deliver_mail` hook, SMTP and a development outbox.",
    settings="settings:MailSettings",
    container="container:MailContainer",
    hooks="hooks:MailHooks",
    hookspecs="hookspecs",
)
