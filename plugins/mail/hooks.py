"""The core hooks the `mail` plugin implements.

It registers no readiness check on purpose: mail is sent after the response, so a mail
server that is down costs no request, and taking the instance out of the load balancer
for it would turn a mail outage into an outage of everything.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from core.hookspecs import hookimpl
from plugins.mail.service import senders

logger = logging.getLogger("courtyard.mail")


class MailHooks:
    def __init__(self, container: Any) -> None:
        self.container = container
        # Built now, so a setting it cannot use stops startup (one line naming it).
        container.mailer()

    @hookimpl
    def startup(self, app: FastAPI) -> None:
        """Say where mail goes (never with a credential), so an operator sees it at once."""
        plugins = [i.plugin_name for i in senders(self.container.hooks().deliver_mail)]
        transport = self.container.transport()
        fallback = transport.describe() if transport is not None else None
        if plugins:
            logger.info(
                "mail is delivered by plugin(s) %s%s",
                ", ".join(plugins),
                f", else through {fallback}" if fallback else "",
            )
        elif fallback:
            logger.info("mail is delivered through %s", fallback)
        else:
            logger.info(
                "no mail transport: mail is not sent (set COURTYARD_MAIL__SMTP_URL or "
                "COURTYARD_MAIL__OUTBOX)"
            )
