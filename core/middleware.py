"""One pure-ASGI middleware for what every request needs: a request id, a body limit,
and a problem response (with the request id) for anything unhandled.

Pure ASGI rather than `BaseHTTPMiddleware`: it adds no task or stream per request.

The body limit (`COURTYARD_MAX_REQUEST_BODY`) holds for every route except those marked
with `streams_request_body(max_bytes)`, which read (and bound) their own large bodies,
such as an upload. Only a request already past the app-wide limit pays for finding out
which route it is for.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import HTTP_CODES, PROBLEM_JSON, RequestBodyTooLarge, problem_body
from core.logging import request_id_var

logger = logging.getLogger("courtyard.request")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_BODY_ATTRIBUTE = "__courtyard_max_request_body__"
F = TypeVar("F", bound=Callable[..., Any])


def streams_request_body(max_bytes: int) -> Callable[[F], F]:
    """Mark a route's endpoint as reading its own body of up to `max_bytes` (instead of the
    app-wide limit). The endpoint must stream the body and enforce its exact bound itself."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _MAX_BODY_ATTRIBUTE, max_bytes)
        return endpoint

    return mark


def _request_headers(scope: Scope) -> tuple[str | None, str | None]:
    """`X-Request-ID` and `Content-Length` (first of each), in one pass over the headers."""
    request_id = length = None
    for key, value in scope["headers"]:
        if key == b"x-request-id" and request_id is None:
            request_id = value.decode("latin-1")
        elif key == b"content-length" and length is None:
            length = value.decode("latin-1")
    return request_id, length


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        routes: Callable[[], Iterable[BaseRoute]] = tuple,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.routes = routes  # the app's routes, looked up when a body passes `max_body`
        self._streaming: list[tuple[BaseRoute, int]] | None = None

    def _limit_for(self, scope: Scope) -> int:
        """The body limit of the route `scope` is for (called only past the app-wide one)."""
        if self._streaming is None:
            self._streaming = [
                (route, limit)
                for route in self.routes()
                if (limit := getattr(getattr(route, "endpoint", None), _MAX_BODY_ATTRIBUTE, None))
            ]
        for route, limit in self._streaming:
            if route.matches(scope)[0] is Match.FULL:
                return max(limit, self.max_body)
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, length = _request_headers(scope)
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            if length is not None and not (length.isascii() and length.isdigit()):
                await self._problem(scope, send_with_id, 400, "Content-Length must be digits")
                return
            limit = self.max_body
            if length is not None and int(length) > limit:
                limit = self._limit_for(scope)
                if int(length) > limit:
                    await self._problem(scope, send_with_id, 413, RequestBodyTooLarge(limit).detail)
                    return
            await self.app(scope, self._limited(scope, receive, limit), send_with_id)
        except RequestBodyTooLarge as exc:
            if started:
                raise
            await self._problem(scope, send_with_id, 413, exc.detail)
        except Exception:
            logger.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            await self._problem(scope, send_with_id, 500, "An unexpected error occurred")
        finally:
            request_id_var.reset(token)

    def _limited(self, scope: Scope, receive: Receive, limit: int) -> Receive:
        """Count body bytes as they arrive; stop reading once past the limit."""
        seen = 0
        routed = limit != self.max_body  # the route's own limit is already known

        async def receive_limited() -> Message:
            nonlocal seen, limit, routed
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not routed:
                    limit, routed = self._limit_for(scope), True
                if seen > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        return receive_limited

    async def _problem(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        body: dict[str, Any] = problem_body(
            status=status,
            code=HTTP_CODES[status],
            detail=detail,
            instance=scope.get("path"),
            request_id=scope["state"]["request_id"],
        )
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
