"""The error hierarchy services raise, and the RFC 9457 problem responses they become.

Every error the API returns is `application/problem+json` with a stable, machine-readable
`code` (`<plugin>.<reason>`), the request's `instance` path and its `request_id`.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

from core.db.errors import (
    is_database_unavailable,
    is_lost_race,
    is_stale_statement,
    raised_by_database,
)

logger = logging.getLogger("courtyard.errors")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """A failure a caller should see; services raise these, never HTTP exceptions."""

    status: int = 400
    code: str = "core.bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequestError(AppError):
    status, code = 400, "core.bad_request"


class UnauthorizedError(AppError):
    status, code = 401, "core.unauthorized"

    def __init__(self, detail: str = "Authentication required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class ForbiddenError(AppError):
    status, code = 403, "core.forbidden"


class NotFoundError(AppError):
    status, code = 404, "core.not_found"


class ConflictError(AppError):
    status, code = 409, "core.conflict"


class InvalidInputError(AppError):
    """A 422 naming the offending field, for rules only a service can check (a configured
    limit, a value that must be unique...). Same body as a request validation error."""

    status, code = 422, "core.validation_error"

    def __init__(self, field: str, message: str, *, kind: str = "value_error", **kwargs: Any):
        error = {"field": field, "loc": ["body", *field.split(".")], "message": message}
        kwargs.setdefault("extra", {"errors": [{**error, "type": kind}]})
        super().__init__(f"Invalid input: {field}: {message}", **kwargs)


class PayloadTooLargeError(AppError):
    status, code = 413, "core.payload_too_large"


class UnsupportedMediaTypeError(AppError):
    status, code = 415, "core.unsupported_media_type"


class TooManyRequestsError(AppError):
    status, code = 429, "core.rate_limited"

    def __init__(self, detail: str, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, int(retry_after)))})
        super().__init__(detail, **kwargs)


class ServiceUnavailableError(AppError):
    status, code = 503, "core.service_unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kwargs)


class RequestBodyTooLarge(StarletteHTTPException):
    """Raised while a request body is being read once it passes the configured maximum.

    It is an HTTPException so that FastAPI re-raises it from body parsing unchanged
    (other exceptions there would become a generic 400).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than the limit of {limit} bytes")
        self.limit = limit


class UnsupportedRequestBody(StarletteHTTPException):
    """Raised at the first read of a request body that a route takes as JSON but that is
    declared as something else (or not declared at all). An HTTPException for the same
    reason as `RequestBodyTooLarge`."""

    def __init__(self, content_type: str | None) -> None:
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        super().__init__(
            415, f"This route takes application/json (or application/*+json); got {sent}"
        )


class Problem(BaseModel):
    """An RFC 9457 problem details object, as every error response carries it."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    request_id: str | None = None


class FieldError(BaseModel):
    field: str
    loc: list[str | int]
    message: str
    type: str


class ValidationProblem(Problem):
    errors: list[FieldError]


HTTP_CODES: dict[int, str] = {
    400: "core.bad_request",
    401: "core.unauthorized",
    403: "core.forbidden",
    404: "core.not_found",
    405: "core.method_not_allowed",
    406: "core.not_acceptable",
    409: "core.conflict",
    413: "core.payload_too_large",
    415: "core.unsupported_media_type",
    422: "core.validation_error",
    429: "core.rate_limited",
    500: "core.internal_error",
    503: "core.service_unavailable",
}


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


def instance_of(scope: Mapping[str, Any]) -> str | None:
    """The request's path as the client sent it, without the query: a problem's `instance`.

    Not the decoded `scope["path"]`: percent-decoding turns `%2F` into a separator and
    `%0A` or `%00` into control characters. `raw_path` holds the bytes received (ASGI
    strings are latin-1); some servers and test clients include the query in it.
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.partition(b"?")[0].decode("latin-1")
    path = scope.get("path")
    return path if isinstance(path, str) else None


def problem_body(
    *,
    status: int,
    code: str,
    detail: str | None,
    instance: str | None,
    request_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "request_id": request_id,
    }
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


async def send_problem(
    scope: Mapping[str, Any], send: Send, status: int, detail: str, *, code: str | None = None
) -> None:
    """Answer with a problem response straight from ASGI middleware (outside FastAPI's
    exception handlers); `code` defaults to the status's own."""
    body = problem_body(
        status=status,
        code=code or HTTP_CODES[status],
        detail=detail,
        instance=instance_of(scope),
        request_id=scope.get("state", {}).get("request_id"),
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


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str | None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(
        status=status,
        code=code,
        detail=detail,
        instance=instance_of(request.scope),
        request_id=request_id_of(request),
        extra=extra,
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        # Drop the source ("body", "query", ...) so `field` is what the client sent.
        path = loc[1:] if loc and loc[0] in {"body", "query", "path", "header", "cookie"} else loc
        if err.get("type") == "json_invalid":
            path = []  # the position inside the JSON text is no field: name the body
        out.append(
            {
                "field": ".".join(str(p) for p in path) or (str(loc[0]) if loc else "body"),
                "loc": loc,
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        detail=exc.detail,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc.errors())
    fields = ", ".join(sorted({e["field"] for e in errors if e["field"]}))
    return problem_response(
        request,
        status=422,
        code="core.validation_error",
        detail=f"Invalid input: {fields}" if fields else "Invalid input",
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else _title(status)
    path = instance_of(request.scope)  # as sent: no control characters decoded into it
    if status == 404 and detail == "Not Found":
        detail = f"No resource at {path}"
    headers = dict(exc.headers or {})
    if status == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        if detail == "Method Not Allowed":
            detail = f"Method {request.method} is not allowed on {path}"
    return problem_response(
        request,
        status=status,
        code=HTTP_CODES.get(status, f"core.http_{status}"),
        detail=detail,
        headers=headers,
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method the routes documented for this path serve (Starlette names only the
    first route's).

    A path some route names literally (`/users/stats`) is that route's, as the OpenAPI
    document shows it, even where a parameter route (`/users/{user_id}`) would also take
    it. Asked of the router itself, since included routers nest their routes.
    """
    path = _route_path(request.scope)
    literal = {
        method
        for context in iter_route_contexts(request.app.router.routes)
        if context.path_format == path
        for method in context.methods or ()
    }
    if literal:
        return [method for method in _METHODS if method in literal]
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def _route_path(scope: Scope) -> str:
    """The path the router matches: the request's, without the app's `root_path`."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _unavailable_error(request: Request, exc: Exception) -> JSONResponse:
    if is_lost_race(exc) or is_stale_statement(exc):
        return _lost_race(request, exc)
    if not is_database_unavailable(exc):
        raise exc
    is_db = raised_by_database(exc)
    logger.warning(  # the log line carries the request id (core.logging)
        "%s unavailable: %s: %s",
        "database" if is_db else "backing service",
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )
    return problem_response(
        request,
        status=503,
        code="core.database_unavailable" if is_db else "core.service_unavailable",
        detail=(
            "The database is unavailable; try again shortly"
            if is_db
            else "A service this request needs is unavailable; try again shortly"
        ),
        headers={"Retry-After": "5"},
    )


def _lost_race(request: Request, exc: Exception) -> JSONResponse:
    """A transaction the database rolled back to break a deadlock or a serialization
    conflict with a concurrent one, or that met a prepared statement gone stale under a
    schema change (see `core.db.errors.is_stale_statement`): nothing was written, and
    sending it again succeeds."""
    logger.warning(
        "transaction rolled back by the database: %s",
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
    )
    return problem_response(
        request,
        status=503,
        code="core.database_busy",
        detail="The request collided with a concurrent change and was undone; try again",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can produce an RFC 9457 problem response."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    ):
        app.add_exception_handler(exc_type, _unavailable_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json bodies for `statuses`."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationProblem if status == 422 else Problem
        schema = {"$ref": f"#/components/schemas/{model.__name__}"}
        out[status] = {  # no "model": see core/openapi.py
            "description": _title(status),
            "content": {PROBLEM_JSON: {"schema": schema, "example": problem_example(status)}},
        }
    return out


def problem_example(status: int) -> dict[str, Any]:
    """A `status` problem as the API docs show it: the core's code for the status (a
    plugin's own codes are listed in its docs)."""
    example: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "code": HTTP_CODES.get(status, f"core.http_{status}"),
        "request_id": "5f0c2a9e7b3d4c18a6e1f4b2d9c07e35",
    }
    if status == 422:
        example["detail"] = "Invalid input: email"
        example["errors"] = [
            {
                "field": "email",
                "loc": ["body", "email"],
                "message": "value is not a valid email address",
                "type": "value_error",
            }
        ]
    return example
