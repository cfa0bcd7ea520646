"""The app's OpenAPI document: FastAPI's, plus the problem schemas error responses cite.

`problem_responses` documents every error as `application/problem+json` with a `$ref` to
`Problem` or `ValidationProblem`, and no `model`: a `model` would make FastAPI document a
second, `application/json` body the API never sends, and build a serializer for every
error status of every route at start-up that nothing uses. The two schemas (and the ones
they refer to) are added here instead, the way FastAPI would have written them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from core.errors import Problem, ValidationProblem

REF_TEMPLATE = "#/components/schemas/{model}"


def problem_schemas() -> dict[str, Any]:
    """`components.schemas` entries for the problem bodies and what they refer to."""
    _, document = models_json_schema(
        [(Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template=REF_TEMPLATE,
    )
    return dict(document.get("$defs", {}))


def document_problems(app: FastAPI) -> None:
    """Make `app.openapi()` include the problem schemas (built on first use, then kept)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            schemas = {**document.setdefault("components", {}).get("schemas", {})}
            schemas.update(problem_schemas())
            document["components"]["schemas"] = dict(sorted(schemas.items()))
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
