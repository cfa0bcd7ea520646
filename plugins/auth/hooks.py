"""The core and `user` hooks the `auth` plugin implements."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from core.hookspecs import Degraded, ReadinessCheck, hookimpl
from core.identity import Principal
from plugins.auth.openapi import offer_password_flow
from plugins.auth.passwords import common_passwords
from plugins.auth.tokens import InvalidTokenError
from plugins.user.api import User

if TYPE_CHECKING:
    import typer
    from prometheus_client.registry import Collector

logger = logging.getLogger("courtyard.auth")


class AuthHooks:
    def __init__(self, container: Any) -> None:
        self.container = container
        # Built now, so a bad key or setting stops startup (one line naming it), not a request.
        self.tokens = container.tokens()
        self.revoked = container.revoked()
        container.service()

    @hookimpl
    async def authenticate(self, request: Request) -> Principal | None:
        """The caller of a valid access token (`Authorization: Bearer …`) whose session has
        not been revoked; None for anything else, so another authenticator may try."""
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            claims = self.tokens.decode(token.strip())
        except InvalidTokenError:
            return None
        if await self.revoked.is_revoked(claims.session_id):
            return None
        return Principal(user_id=claims.user_id, roles=claims.roles, session_id=claims.session_id)

    @hookimpl
    async def user_deleted(self, user_id: str) -> None:
        await self.container.service().revoke_user_sessions(user_id)

    @hookimpl
    async def user_updated(self, user: User, changes: dict[str, Any]) -> None:
        if changes.get("is_active") is False:
            await self.container.service().revoke_user_sessions(user.id)

    @hookimpl
    def register_commands(self) -> list[typer.Typer]:
        # Imported here: the command line's libraries stay out of the server's start-up.
        from plugins.auth.cli import build_cli

        return [build_cli(self.container)]

    @hookimpl
    def register_metrics(self) -> list[Collector]:
        # Imported here: prometheus_client is loaded only with COURTYARD_METRICS on.
        from plugins.auth.metrics import ThrottleCollector

        return [ThrottleCollector(self.container.throttle())]

    @hookimpl
    def register_readiness_checks(self) -> list[ReadinessCheck]:
        windows = self.container.rate_limits()

        async def rate_limits() -> None:
            # Degraded, not unready: sign-ins answer 503 while the storage is away, every
            # other route serves. With the storage shared (Redis), an outage would
            # otherwise take every instance out of rotation at once.
            if not await windows.check():
                raise Degraded("the rate-limit storage cannot be reached, sign-ins answer 503")

        return [ReadinessCheck("rate_limits", rate_limits)]

    @hookimpl
    async def startup(self, app: FastAPI) -> None:
        offer_password_flow(app, token_url=app.url_path_for("auth_token"))
        # Loaded now, off the loop, so no request pays for them on the loop.
        await self.container.hasher().prepare()
        await asyncio.to_thread(common_passwords)
        if self.container.settings().require_verified_email and not (
            self.container.mail_mailer().configured
        ):
            logger.warning(
                "COURTYARD_AUTH__REQUIRE_VERIFIED_EMAIL is on but no mail is configured: "
                "new accounts cannot verify their email, so they cannot sign in"
            )

    @hookimpl
    async def shutdown(self, app: FastAPI) -> None:
        await self.container.rate_limits().close()
