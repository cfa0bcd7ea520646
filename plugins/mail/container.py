from typing import Any

from dependency_injector import containers, providers

from core.settings import CoreSettings
from plugins.mail.service import MailService
from plugins.mail.settings import MailSettings
from plugins.mail.transports import transport_from


class MailContainer(containers.DeclarativeContainer):
    """Inputs come from the core. `mailer` is what other plugins use (as their
    `mail_mailer` input, see `api.py`); everything here lives as long as the app."""

    # What other plugins may take as inputs (`mail_mailer`: see api.py).
    published = ("mailer",)

    settings = providers.Dependency(instance_of=MailSettings)
    core_settings = providers.Dependency(instance_of=CoreSettings)
    hooks: providers.Dependency[Any] = providers.Dependency()

    # SMTP, the outbox or None, as the settings (and COURTYARD_ENV) choose.
    transport = providers.Singleton(
        transport_from, settings=settings, env=core_settings.provided.env
    )
    mailer = providers.Singleton(MailService, hooks=hooks, transport=transport)
