"""Who is calling: the Principal and the dependencies that require one.

The core decides *who*, never *how*: the `authenticate(request)` hook (firstresult) is
implemented by plugins such as `auth` (JWT) or an API-key plugin. With no authenticator,
every protected route answers 401. Once a request is authenticated, the `check_principal`
hooks may refresh or reject the principal (the `user` plugin rejects deactivated and
deleted accounts and applies their current role), so a token cannot outlive the account.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.errors import ForbiddenError, UnauthorizedError

_bearer = HTTPBearer(
    auto_error=False,
    description="Paste an access token; an authentication plugin (e.g. `auth`) issues them.",
)
_CACHE_KEY = "courtyard.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    session_id: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles


async def optional_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal | None:
    """The caller's Principal, or None when no authenticator recognises the request."""
    state = request.scope.setdefault("state", {})
    if _CACHE_KEY in state:
        cached: Principal | None = state[_CACHE_KEY]
        return cached
    principal = await _authenticate(request)
    if principal is not None:
        principal = await _check(request, principal)
    state[_CACHE_KEY] = principal
    return principal


async def _authenticate(request: Request) -> Principal | None:
    # Authenticators in plugin order; the first that recognises the request wins. Walked
    # here rather than by pluggy's firstresult so async authenticators are awaited.
    for authenticate in request.app.state.authenticators:
        result = await _resolved(authenticate(request=request), "authenticate")
        if result is not None:
            return result
    return None


async def _check(request: Request, principal: Principal) -> Principal | None:
    """Let every `check_principal` confirm (or refresh) the principal; None rejects it."""
    checked: Principal | None = principal
    for check in request.app.state.principal_checks:
        checked = await _resolved(check(request=request, principal=checked), "check_principal")
        if checked is None:
            return None
    return checked


async def _resolved(result: Any, hook: str) -> Principal | None:
    if inspect.isawaitable(result):
        result = await result
    if result is not None and not isinstance(result, Principal):
        raise TypeError(f"{hook} returned {type(result).__name__}, not a Principal")
    return result


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
