"""The core hooks the `user` plugin implements."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import Request

from core.hookspecs import hookimpl
from core.identity import Principal
from plugins.user.api import ROLES, USER_ID_PREFIX

if TYPE_CHECKING:
    import typer


class UserHooks:
    def __init__(self, container: Any) -> None:
        self.container = container

    @hookimpl
    def register_commands(self) -> list[typer.Typer]:
        # Imported here: the command line's libraries stay out of the server's start-up.
        from plugins.user.cli import build_cli

        return [build_cli(self.container)]

    @hookimpl
    async def check_principal(self, request: Request, principal: Principal) -> Principal | None:
        """Only live, active users act, with the role their account has now.

        A token issued before the account was deactivated, deleted or demoted stops
        working (or loses its admin rights) on the next request, not when it expires. The
        account is read from the primary, so replication lag cannot delay that, and goes
        with the principal (`current_account` hands it to routes). Principals that are not
        users (no `usr_` id: a service account, an API client) pass unchanged.
        """
        if not principal.user_id.startswith(f"{USER_ID_PREFIX}_"):
            return principal
        account = await self.container.accounts().active(principal.user_id)
        if account is None:
            return None
        roles = (principal.roles - ROLES) | {account.role}
        return replace(principal, roles=roles, account=account)
