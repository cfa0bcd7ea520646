"""The OpenAPI document describes error bodies as the API sends them: problem+json only,
with the problem schemas in `components` (core/openapi.py)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema

from core.app import create_app
from core.settings import CoreSettings


def sqlite() -> CoreSettings:
    """Built in the test, so the suite's plugin selection applies (not at import time)."""
    return CoreSettings(database_url="sqlite+aiosqlite:///:memory:")


def error_bodies(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`"<METHOD> <path> <status>"` → the documented content of each error response."""
    out = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    out[f"{method.upper()} {path} {status}"] = answer.get("content", {})
    return out


def test_every_error_is_documented_as_problem_json_only() -> None:
    bodies = error_bodies(create_app(sqlite()).openapi())
    assert len(bodies) > 100
    assert {where: list(content) for where, content in bodies.items()} == {
        where: ["application/problem+json"] for where in bodies
    }
    refs = {content["application/problem+json"]["schema"]["$ref"] for content in bodies.values()}
    assert refs == {"#/components/schemas/Problem", "#/components/schemas/ValidationProblem"}


async def test_the_problem_schemas_describe_what_the_api_sends() -> None:
    app = create_app(sqlite())
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "FieldError"} <= set(schemas)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        invalid = await client.post("/api/v1/auth/login", json={"email": 3})
        missing = await client.get("/api/v1/nothing-here")
    assert (invalid.status_code, missing.status_code) == (422, 404)
    for answer, name in ((invalid, "ValidationProblem"), (missing, "Problem")):
        schema = {**schemas[name], "components": document["components"]}
        jsonschema.validate(answer.json(), schema)
    assert invalid.json()["errors"][0]["field"] == "email"
    assert "errors" in schemas["ValidationProblem"]["required"]


def test_every_documented_problem_has_an_example_of_its_status() -> None:
    """Swagger UI shows the example, not `"code": "string"`: one the schema accepts, with
    the status it is documented under and the core's code for it."""
    document = create_app(sqlite()).openapi()
    for where, content in error_bodies(document).items():
        body = content["application/problem+json"]
        status = int(where.rsplit(" ", 1)[1])
        example = body["example"]
        assert (example["status"], example["code"].startswith("core.")) == (status, True), where
        name = body["schema"]["$ref"].rsplit("/", 1)[1]
        jsonschema.validate(example, {**document["components"]["schemas"][name], **document})


def test_the_document_is_built_once() -> None:
    app = create_app(sqlite())
    assert app.openapi() is app.openapi()


def test_operation_ids_and_model_names_are_fastapis_for_the_full_path() -> None:
    """Clients generated from the document name their calls and models after these. Each
    operationId is FastAPI's default for the route's whole path, plugin prefix included,
    as `include_router` makes it, and a body model is named after its operation."""
    document = create_app(sqlite()).openapi()
    operation_ids = {
        (method, path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert {
        f"{method.upper()} {path}": operation_id
        for (method, path), operation_id in operation_ids.items()
        if not operation_id.endswith(f"{re.sub(r'[^0-9a-zA-Z_]', '_', path)}_{method}")
    } == {}
    ids = set(operation_ids.values())
    assert len(ids) == len(operation_ids)
    assert {
        *("live_health_live_get", "read_me_api_v1_users_me_get", "login_api_v1_auth_login_post"),
        *("auth_token_api_v1_auth_token_post", "create_upload_api_v1_uploads_post"),
    } <= ids
    bodies = {name for name in document["components"]["schemas"] if name.startswith("Body_")}
    assert bodies == {"Body_auth_token_api_v1_auth_token_post"}
    assert {name.removeprefix("Body_") for name in bodies} <= ids
