"""Swagger's Authorize button for the password flow.

The core's protected routes declare a plain bearer scheme (paste a token). This adds an
OAuth2 password flow pointing at `/token`, offered as an alternative on every operation
that takes the bearer token, so "Authorize" can also sign in with an email and password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

SCHEME = "OAuth2Password"


def offer_password_flow(app: FastAPI, token_url: str) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        bearers = [name for name, s in schemes.items() if s.get("scheme") == "bearer"]
        schemes[SCHEME] = {
            "type": "oauth2",
            "description": "Sign in with your email as the username.",
            "flows": {"password": {"tokenUrl": token_url, "scopes": {}}},
        }
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                security = operation.get("security") if isinstance(operation, dict) else None
                if security and any(name in r for r in security for name in bearers):
                    security.append({SCHEME: []})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
