"""Acting as a user in tests, without any authentication plugin.

The kit puts a test-only authenticator first in the app under test: a request carrying
`X-Courtyard-Test-Principal: <user id>[;role,role…]` is that principal. The app's
`check_principal` hooks still run, so with the `user` plugin enabled the id must be a
live, active user (create one through the user plugin first) and roles come from the
account. Never part of an app built outside the kit.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from core.hookspecs import hookimpl
from core.identity import Principal

HEADER = "X-Courtyard-Test-Principal"
PLUGIN_NAME = "courtyard.testing"  # how the kit's authenticator is registered


def principal_headers(user_id: str, *roles: str) -> dict[str, str]:
    """Headers that make the kit's app treat a request as coming from `user_id`."""
    return {HEADER: f"{user_id};{','.join(roles)}"}


class HeaderAuthenticator:
    """The kit's authenticator: the test principal header, asked before any plugin's."""

    @hookimpl(tryfirst=True)
    def authenticate(self, request: Request) -> Principal | None:
        value = request.headers.get(HEADER)
        if not value:
            return None
        user_id, _, roles = value.partition(";")
        return Principal(user_id=user_id.strip(), roles=frozenset(r for r in roles.split(",") if r))


def trust_test_principals(app: FastAPI) -> None:
    """Let `app` accept the kit's test principal header, before its own authenticators."""
    app.state.kernel.pm.register(HeaderAuthenticator(), name=PLUGIN_NAME)
