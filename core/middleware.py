"""One pure-ASGI middleware for what every request needs: a request id, a body limit,
and a problem response (with the request id) for anything unhandled.

Pure ASGI rather than `BaseHTTPMiddleware`: it adds no task or stream per request.

The body limit (`COURTYARD_MAX_REQUEST_BODY`) holds for every route except those marked
with `streams_request_body(max_bytes)`, which read (and bound) their own large bodies,
such as an upload. The limit is settled at the first read of the body: by then the router
has put the matched endpoint in the scope, so no route table is walked here.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import HTTP_CODES, PROBLEM_JSON, RequestBodyTooLarge, instance_of, problem_body
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
    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    def _limit_for(self, scope: Scope) -> int:
        """The body limit of the endpoint the router matched (the app-wide one if unmarked)."""
        own = getattr(scope.get("endpoint"), _MAX_BODY_ATTRIBUTE, None)
        return max(own, self.max_body) if own else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, length = _request_headers(scope)
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
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
            declared = int(length) if length is not None else None
            await self.app(scope, self._limited(scope, receive, declared), send_with_id)
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

    def _limited(self, scope: Scope, receive: Receive, declared: int | None) -> Receive:
        """Refuse a declared length past the limit before reading a byte; count body bytes
        as they arrive and stop once past it."""
        seen = 0
        limit: int | None = None

        async def receive_limited() -> Message:
            nonlocal seen, limit
            if limit is None:
                limit = self._limit_for(scope)
                if declared is not None and declared > limit:
                    raise RequestBodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        return receive_limited

    async def _problem(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        body: dict[str, Any] = problem_body(
            status=status,
            code=HTTP_CODES[status],
            detail=detail,
            instance=instance_of(scope),
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
