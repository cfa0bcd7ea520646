"""Who is calling: the Principal and the dependencies that require one.

The core decides *who*, never *how*: the `authenticate(request)` hook (firstresult) is
implemented by plugins such as `auth` (JWT) or an API-key plugin. With no authenticator,
every protected route answers 401. Once a request is authenticated, the `check_principal`
hooks may refresh or reject the principal (the `user` plugin rejects deactivated and
deleted accounts and applies their current role), so a token cannot outlive the account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.caller import set_caller
from core.errors import ForbiddenError, UnauthorizedError
from core.hooks import call_hook
from core.state import root_container

_bearer = HTTPBearer(
    auto_error=False,
    description="Paste an access token; an authentication plugin (e.g. `auth`) issues them.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    session_id: str | None = None
    # What a `check_principal` hook read to confirm the caller (the `user` plugin: the
    # caller's `User`), opaque to the core. It travels with the principal, which FastAPI
    # resolves once per request, so a route that needs the caller's account gets the row
    # the check read instead of reading it again.
    account: object | None = field(default=None, compare=False, repr=False)

    def has_role(self, role: str) -> bool:
        return role in self.roles


async def optional_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal | None:
    """The caller's Principal, or None when no authenticator recognises the request.

    Resolved once per request: FastAPI caches a dependency's value for the request, so
    every route dependency asking for the principal shares this one. The database layer
    learns the caller from it (`core.caller`: read-your-writes on a replica)."""
    hooks = root_container(request).hooks()
    # The first authenticator (in plugin order) that recognises the request wins; then
    # every check gets the previous one's principal, and a None rejects it.
    principal: Principal | None = await call_hook(
        hooks.authenticate, returns=Principal, request=request
    )
    if principal is not None:
        principal = await call_hook(
            hooks.check_principal,
            chain="principal",
            returns=Principal,
            request=request,
            principal=principal,
        )
    set_caller(principal.user_id if principal is not None else None)
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """The caller's Principal; 401 problem response when unauthenticated."""
    if principal is None:
        raise UnauthorizedError("Authentication required")
    return principal


def require_role(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that requires `role` (403 otherwise) and returns the Principal."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_role(role):
            raise ForbiddenError(f"This action requires the {role!r} role", code="core.forbidden")
        return principal

    dependency.__name__ = f"require_role_{role}"
    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
