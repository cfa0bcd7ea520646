"""The app's OpenAPI document: FastAPI's, plus what describes the API as it answers.

`problem_responses` documents every error as `application/problem+json` with a `$ref` to
`Problem` or `ValidationProblem`, and no `model`: a `model` would make FastAPI document a
second, `application/json` body the API never sends, and build a serializer for every
error status of every route at start-up that nothing uses. The two schemas (and the ones
they refer to) are added here instead, the way FastAPI would have written them.

FastAPI documents a 422 of its own (`HTTPValidationError`, as `application/json`, which
the API never sends) on every route with a parameter or a body, even one whose only
input is a path id any string satisfies. Here a 422 is a `ValidationProblem`, documented
where a request can fail validation and only there (`can_fail_validation`).
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

from fastapi import FastAPI, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.json_schema import models_json_schema

from core.errors import Problem, ValidationProblem, problem_responses

REF_TEMPLATE = "#/components/schemas/{model}"
# What FastAPI documents a 422 with; the API answers a `ValidationProblem` instead.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# Values any request has and any value satisfies: a path parameter, or an optional query
# parameter, header, cookie or form field, of plain unconstrained text.
_FREE_TEXT = (str, str | None)

API_DESCRIPTION = """\
Courtyard is a modular backend: each domain (accounts, sign-in, uploads, ...) is a plugin \
with its own tag below and its routes under `/api/v1/`. Which plugins run is \
configuration: this page shows the ones this deployment runs.

**Authentication.** Protected operations take a bearer token, \
`Authorization: Bearer <access_token>`, issued by an authentication plugin. With the \
built-in `auth` plugin, `POST /api/v1/auth/signup` or `POST /api/v1/auth/login` answers \
a short-lived access token (`expires_in` seconds) and a refresh token to trade at \
`POST /api/v1/auth/refresh` for the next pair. **Authorize** on this page signs in with \
an email and password, or takes a token.

**Errors.** Every error is an RFC 9457 problem (`application/problem+json`) with a \
stable, machine-readable `code` (`<plugin>.<reason>`, such as \
`auth.invalid_credentials`), the request's path as `instance` and its `request_id` (also \
the `X-Request-ID` header). A 422 lists what was wrong in `errors`, one entry per field. \
What the caller may not see answers 404, as if it did not exist.

**Ids** are a type prefix and a ULID, such as `usr_01JP9ZMQCNR1TMCDJNVSVQHRET`: opaque \
strings that sort by creation time.

**Lists** are cursor-paginated: `?limit=` (1-100, default 20) and `?cursor=`. A page is \
`{"items": [...], "next_cursor": "..."}`; pass `next_cursor` as `?cursor=` for the next \
one; it is `null` on the last page.
"""


def problem_schemas() -> dict[str, Any]:
    """`components.schemas` entries for the problem bodies and what they refer to."""
    _, document = models_json_schema(
        [(Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template=REF_TEMPLATE,
    )
    return dict(document.get("$defs", {}))


def document_problems(app: FastAPI) -> None:
    """Make `app.openapi()` include the problem schemas, and document 422 where a request
    can fail validation (built on first use, then kept)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document_validation_problems(document, app)
            schemas = {**document.setdefault("components", {}).get("schemas", {})}
            _drop_unused(schemas, FASTAPI_VALIDATION_SCHEMAS, document["paths"])
            schemas.update(problem_schemas())
            document["components"]["schemas"] = dict(sorted(schemas.items()))
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def document_validation_problems(document: dict[str, Any], app: FastAPI) -> None:
    """A `ValidationProblem` 422 on each operation whose request can fail validation, in
    place of FastAPI's; none on the others (a 422 a route declares itself stays: its
    service may refuse a value)."""
    can_fail = {
        (context.path_format, method.lower()): can_fail_validation(context.original_route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            declared = responses.get("422")
            if can_fail.get((path, method), False):
                if declared is None or _is_fastapis(declared):
                    responses["422"] = problem_responses(422)[422]
            elif declared is not None and _is_fastapis(declared):
                del responses["422"]


def can_fail_validation(route: APIRoute) -> bool:
    """Whether FastAPI can refuse a request to `route` with a 422: it has a JSON body (which
    may not even parse), or a parameter or form field a request can get wrong."""
    if any(_can_fail(field.field_info) for field in get_flat_params(route.dependant)):
        return True
    body = route.body_field
    if body is None:
        return False
    form = body.field_info.annotation  # a form's fields, gathered in one model
    if not isinstance(body.field_info, params.Form) or not _is_model(form):
        return True
    return any(_can_fail(field) for field in form.model_fields.values())


def _can_fail(field: FieldInfo) -> bool:
    if field.metadata or field.annotation not in _FREE_TEXT:
        return True  # a constraint, or a type a value can fail to be
    return field.is_required() and not isinstance(field, params.Path)


def _is_model(value: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _drop_unused(schemas: dict[str, Any], names: tuple[str, ...], paths: Any) -> None:
    """Remove the schemas `names` unless an operation or another schema refers to them."""
    others = {name: schema for name, schema in schemas.items() if name not in names}
    used = json.dumps([paths, others])
    for name in names:
        if f'"{REF_TEMPLATE.format(model=name)}"' not in used:
            schemas.pop(name, None)


def _is_fastapis(response: dict[str, Any]) -> bool:
    """Whether a documented 422 is the one FastAPI adds itself."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).endswith(f"/{FASTAPI_VALIDATION_SCHEMAS[0]}")
