"""One pure-ASGI middleware for what every request needs: a request id, a body limit, the
body's media type, a problem response (with the request id) for anything unhandled, and
one access line (`courtyard.access`, INFO) as the request ends.

Pure ASGI rather than `BaseHTTPMiddleware`: it adds no task or stream per request.

The body limit (`COURTYARD_MAX_REQUEST_BODY`) holds for every route except those marked
with `streams_request_body(max_bytes)`, which read (and bound) their own large bodies,
such as an upload. The limit is settled at the first read of the body: by then the router
has put the matched endpoint in the scope, so no route table is walked here.

At that same first read, a route that takes a JSON body (FastAPI's body parameters that are
not form fields) refuses a body declared as anything but `application/json` or
`application/*+json`, or sent without a Content-Type, with 415: FastAPI itself would not
parse such a body and answer 422 for a "missing" body, which tells the client nothing.

The access line carries `request_id`, `method`, `path`, `status`, `duration_ms` (from the
request's arrival here to the end of its response, body included) and `user_id` once the
principal is resolved (`core.caller`, which records it in the request's `scope["state"]`:
that reaches this middleware from whatever task a plugin's middleware runs the route in).
The path is logged without its query string, which may carry a credential (a signed
download link's signature, an OAuth callback's code).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.caller import CALLER_STATE_KEY, caller_id, request_state
from core.errors import RequestBodyTooLarge, UnsupportedRequestBody, send_problem
from core.logging import request_id_var

logger = logging.getLogger("courtyard.request")
access_logger = logging.getLogger("courtyard.access")

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


def _request_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """`X-Request-ID`, `Content-Length` and `Content-Type` (first of each), in one pass over
    the headers."""
    request_id = length = content_type = None
    for key, value in scope["headers"]:
        if key == b"x-request-id" and request_id is None:
            request_id = value.decode("latin-1")
        elif key == b"content-length" and length is None:
            length = value.decode("latin-1")
        elif key == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
    return request_id, length, content_type


def _takes_json(scope: Scope) -> bool:
    """Whether the matched route reads its body as JSON: a body parameter (not a form)
    whose declared media type is JSON (`Body(media_type="text/plain")` opts out)."""
    body_field = getattr(scope.get("route"), "body_field", None)
    if body_field is None or isinstance(body_field.field_info, params.Form):
        return False
    return _is_json(getattr(body_field.field_info, "media_type", "application/json"))


def _is_json(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, parameters (charset) aside."""
    media_type = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


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
        arrived = time.perf_counter()
        incoming, length, content_type = _request_headers(scope)
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        # No caller until the principal is resolved (`core.caller`), whatever the task
        # that runs the request had before (a test client runs requests in its own task).
        caller_token = caller_id.set(None)
        state_token = request_state.set(state)
        header = (b"x-request-id", request_id.encode())
        status: int | None = None  # set when the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            if length is not None and not (length.isascii() and length.isdigit()):
                await send_problem(scope, send_with_id, 400, "Content-Length must be digits")
                return
            declared = int(length) if length is not None else None
            checked = self._checked(scope, receive, declared, content_type)
            await self.app(scope, checked, send_with_id)
        except RequestBodyTooLarge as exc:
            if status is not None:  # the response has started
                raise
            await send_problem(scope, send_with_id, 413, exc.detail)
        except Exception:
            logger.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            if status is not None:  # the response has started
                raise
            await send_problem(scope, send_with_id, 500, "An unexpected error occurred")
        finally:
            _log_access(scope, request_id, status, arrived)
            request_state.reset(state_token)
            caller_id.reset(caller_token)
            request_id_var.reset(token)

    def _checked(
        self, scope: Scope, receive: Receive, declared: int | None, content_type: str | None
    ) -> Receive:
        """At the first read: refuse a JSON route's body of another media type (415) and a
        declared length past the limit (413), before reading a byte. Then count body bytes
        as they arrive and stop once past the limit."""
        seen = 0
        limit: int | None = None
        # A JSON route's body of another type (or none given) is refused once there is a
        # body: at once for a declared length, else at the first bytes of a chunked one.
        # An empty body is left to the route (an optional body, or a 422 naming it).
        refuse_body = False

        async def receive_checked() -> Message:
            nonlocal seen, limit, refuse_body
            if limit is None:
                limit = self._limit_for(scope)
                if declared is not None and declared > limit:
                    raise RequestBodyTooLarge(limit)
                typed_json = content_type is not None and _is_json(content_type)
                refuse_body = not typed_json and _takes_json(scope)
                if refuse_body and declared:
                    raise UnsupportedRequestBody(content_type)
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if refuse_body and body:
                    raise UnsupportedRequestBody(content_type)
                seen += len(body)
                if seen > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        return receive_checked


def _log_access(scope: Scope, request_id: str, status: int | None, arrived: float) -> None:
    """The request's access line; `status` is None when no response was sent (the client
    went away first)."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "request_id": request_id,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round((time.perf_counter() - arrived) * 1000, 2),
    }
    user_id = scope["state"].get(CALLER_STATE_KEY)
    if user_id is not None:
        fields["user_id"] = user_id
    access_logger.info("request", extra=fields)
