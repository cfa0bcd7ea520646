"""One pure-ASGI middleware for what every request needs: a request id, a body limit,
and a problem response (with the request id) for anything unhandled.

Pure ASGI rather than `BaseHTTPMiddleware`: it adds no task or stream per request.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import HTTP_CODES, PROBLEM_JSON, RequestBodyTooLarge, problem_body
from core.logging import request_id_var

logger = logging.getLogger("courtyard.request")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


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
            if length is not None and int(length) > self.max_body:
                await self._problem(
                    scope, send_with_id, 413, RequestBodyTooLarge(self.max_body).detail
                )
                return
            await self.app(scope, self._limited(receive), send_with_id)
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

    def _limited(self, receive: Receive) -> Receive:
        """Count body bytes as they arrive; stop reading once past the limit."""
        seen = 0
        limit = self.max_body

        async def receive_limited() -> Message:
            nonlocal seen
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
