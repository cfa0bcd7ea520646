"""Who is calling: the Principal and the dependencies that require one.

The core decides *who*, never *how*: the `authenticate(request)` hook (firstresult) is
implemented by plugins such as `auth` (JWT) or an API-key plugin. With no authenticator,
every protected route answers 401.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

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
    principal = None
    # Authenticators in plugin order; the first that recognises the request wins. Walked
    # here rather than by pluggy's firstresult so async authenticators are awaited.
    for authenticate in request.app.state.authenticators:
        result = authenticate(request=request)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            if not isinstance(result, Principal):
                raise TypeError(f"authenticate returned {type(result).__name__}, not a Principal")
            principal = result
            break
    state[_CACHE_KEY] = principal
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
