"""CORS: which pages of other origins may call the API from a browser (`COURTYARD_CORS_*`).

Starlette's `CORSMiddleware`, added by `create_app` only when `COURTYARD_CORS_ORIGINS` lists
origins (none: no middleware, nothing to pay per request). It sits outside the
request-context middleware, so every answer the app gives a listed origin carries the CORS
headers, the problem responses that middleware sends itself (413, 415, 500) included: a
page can read why its request failed. A preflight (`OPTIONS` with
`Access-Control-Request-Method`) is answered by this middleware alone, before any route;
one it refuses is a 400 problem, `core.cors_refused`, like every other error.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.errors import PROBLEM_JSON, instance_of, problem_body
from core.settings import CoreSettings

CORS_REFUSED_CODE = "core.cors_refused"


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, answering a refused preflight with a problem that names
    the request headers asking for what is not allowed. (A preflight never reaches the
    request-context middleware: its answer has no request id.)"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    response = _refusal(self.refused(headers), response, instance_of(scope))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def refused(self, headers: Headers) -> list[str]:
        """The preflight's request headers that ask for what the settings do not allow, by
        the rules Starlette's `preflight_response` applies, read from its settings."""
        named = []
        if not self.is_allowed_origin(headers["origin"]):
            named.append("Origin")
        if headers["access-control-request-method"] not in self.allow_methods:
            named.append("Access-Control-Request-Method")
        asked = headers.get("access-control-request-headers")
        wanted = [] if asked is None else [h.strip().lower() for h in asked.split(",")]
        if not self.allow_all_headers and any(h not in self.allow_headers for h in wanted):
            named.append("Access-Control-Request-Headers")
        if "access-control-request-private-network" in headers and not self.allow_private_network:
            named.append("Access-Control-Request-Private-Network")
        return named


def _refusal(named: list[str], refused: Response, instance: str | None) -> Response:
    """The refusal as a problem naming what was not allowed, with the CORS headers of
    Starlette's own answer."""
    what = f"{', '.join(named)} not allowed" if named else "not allowed"
    body = problem_body(
        status=400,
        code=CORS_REFUSED_CODE,
        detail=f"CORS preflight refused: {what} (COURTYARD_CORS_*)",
        instance=instance,
        request_id=None,
    )
    kept = {
        name: value
        for name, value in refused.headers.items()
        if name not in ("content-type", "content-length")
    }
    return JSONResponse(body, status_code=400, headers=kept, media_type=PROBLEM_JSON)


def add_cors(app: FastAPI, settings: CoreSettings) -> None:
    """Add the CORS middleware, outside every middleware added before; nothing without
    origins."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=settings.cors_allow_methods,
        allow_headers=settings.cors_allow_headers,
        expose_headers=settings.cors_expose_headers,
        max_age=settings.cors_max_age,
    )
