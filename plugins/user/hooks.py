"""The core hooks the `user` plugin implements."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import Request

from core.hookspecs import hookimpl
from core.identity import Principal
from plugins.user.api import ROLES, USER_ID_PREFIX, User

if TYPE_CHECKING:
    import typer

_ACCOUNT_KEY = "courtyard.user.account"


def cached_account(request: Request, user_id: str) -> User | None:
    """The caller's account as `check_principal` loaded it for this request, if it did."""
    account: User | None = request.scope.get("state", {}).get(_ACCOUNT_KEY)
    return account if account is not None and account.id == user_id else None


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
        account is read from the primary, so replication lag cannot delay that. Principals
        that are not users (no `usr_` id: a service account, an API client) pass unchanged.
        """
        if not principal.user_id.startswith(f"{USER_ID_PREFIX}_"):
            return principal
        account = await self.container.accounts().active(principal.user_id)
        if account is None:
            return None
        request.scope.setdefault("state", {})[_ACCOUNT_KEY] = account
        return replace(principal, roles=(principal.roles - ROLES) | {account.role})
