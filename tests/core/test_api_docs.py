"""The API documentation as a reader meets it: `/docs` and `/redoc` work offline, every
operation has a summary written for people, the examples look like what the API answers,
a 422 is documented only where a request can fail validation, and the documented limits
are the ones the deployment enforces."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from core.app import create_app
from core.db.ids import is_valid_id
from core.settings import CoreSettings
from tests.conftest import AppFactory
from tests.support.problems import assert_problem

BUILT_IN = "user,auth,mail,oauth,upload"
SETTINGS = CoreSettings(database_url="sqlite+aiosqlite:///:memory:", enabled_plugins=BUILT_IN)
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
SIGNUP = "/api/v1/auth/signup"
PASSWORD = "correct horse battery staple"


class PageLinks(HTMLParser):
    """The URLs a page makes the browser load: scripts, styles, icons, the spec."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [
            value for name, value in attrs if name in {"src", "href", "spec-url"} and value
        ]


def links_of(page: str) -> list[str]:
    parser = PageLinks()
    parser.feed(page)
    # Swagger UI takes the document's URL in its script: `url: '/openapi.json'`.
    return parser.urls + re.findall(r"\burl: '([^']+)'", page)


@asynccontextmanager
async def client_of(app: FastAPI, root_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# Offline pages


@pytest.mark.parametrize(
    ("page", "script", "global_name"),
    [
        ("/docs", "swagger-ui-bundle.js", "SwaggerUIBundle"),
        ("/redoc", "redoc.standalone.js", "Redoc"),
    ],
)
@pytest.mark.parametrize("root_path", ["", "/courtyard"])
async def test_the_docs_pages_load_only_what_the_app_itself_serves(
    page: str, script: str, global_name: str, root_path: str
) -> None:
    """Nothing from a CDN, Google Fonts or FastAPI's site: every file the page loads is
    the app's, and answers with its content and type (behind a proxy's path too)."""
    async with client_of(create_app(SETTINGS), root_path) as client:
        answer = await client.get(f"{root_path}{page}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://|//cdn|fonts\.googleapis", answer.text), answer.text
        links = links_of(answer.text)
        assert f"{root_path}/docs/assets/{script}" in links
        assert f"{root_path}/openapi.json" in links
        for url in links:
            assert url.startswith(f"{root_path}/"), url
            loaded = await client.get(url)
            assert loaded.status_code == 200, url
            suffix = url[url.rfind(".") :]
            expected = ASSET_TYPES.get(suffix, "application/json")
            assert loaded.headers["content-type"].split(";")[0] == expected, url
            if url.endswith(script):
                assert global_name in loaded.text
                assert len(loaded.content) > 100_000, "not the UI's real bundle"


async def test_swagger_uis_oauth2_redirect_page_is_served_too() -> None:
    async with client_of(create_app(SETTINGS)) as client:
        docs = await client.get("/docs")
        assert "'/docs/oauth2-redirect'" in docs.text
        redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "swaggerUIRedirectOauth2" in redirect.text
    assert not re.search(r"https?://", redirect.text)


async def test_a_missing_asset_is_a_404_problem() -> None:
    async with client_of(create_app(SETTINGS)) as client:
        missing = await client.get("/docs/assets/nothing.js")
    assert_problem(missing, 404, "core.not_found")


def test_the_document_describes_the_api() -> None:
    description = create_app(SETTINGS).openapi()["info"]["description"]
    for topic in ("Bearer", "problem+json", "`code`", "ULID", "next_cursor", "?limit="):
        assert topic in description, topic


# Summaries


def test_every_operation_has_a_summary_written_for_people() -> None:
    """Not FastAPI's default (the route's name, title-cased): a route added without a
    `summary=` fails here."""
    app = create_app(SETTINGS)
    document = app.openapi()
    defaults = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                names = {str(context.name), route.endpoint.__name__}
                defaults[(context.path_format, method.lower())] = {
                    name.replace("_", " ").title() for name in names
                }
    summaries = {
        (path, method): operation.get("summary", "")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert summaries.keys() == defaults.keys()
    assert len(summaries) > 30
    assert {
        f"{method.upper()} {path}": summary
        for (path, method), summary in summaries.items()
        if not summary or summary in defaults[(path, method)]
    } == {}
    assert summaries[("/api/v1/auth/login", "post")] == "Sign in with email and password"
    assert summaries[("/api/v1/auth/jwks.json", "get")] == "Public keys for verifying tokens (JWKS)"


# Examples


def example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """The example a docs page shows for `schema`: the first of its `examples`, else one
    made of its parts' examples, with Swagger UI's placeholder ("string", 0, true) for a
    value nothing gives an example of."""
    if schema.get("examples"):
        return schema["examples"][0]
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    for key in ("const", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    branches = [b for b in schema.get("anyOf", schema.get("oneOf", [])) if b != {"type": "null"}]
    if branches:
        return example_of(branches[0], schemas)
    if schema.get("type") == "object" or "properties" in schema:
        return {
            name: example_of(part, schemas) for name, part in schema.get("properties", {}).items()
        }
    if schema.get("type") == "array":
        return [example_of(schema.get("items", {}), schemas)]
    return {"integer": 0, "number": 0, "boolean": True, "null": None}.get(
        schema.get("type"), "string"
    )


def realistic(key: str, value: Any) -> bool:
    """Whether `value` looks like what the API answers for `key`: ids are prefixed ULIDs,
    emails have an @, timestamps are ISO 8601."""
    if key == "id" or key.endswith("_id"):
        return isinstance(value, str) and is_valid_id(value)
    if key == "email":
        return value is None or "@" in str(value)
    if key.endswith("_at") and value is not None:
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            return False
    return True


def unrealistic(value: Any, where: str) -> list[str]:
    """Each value in the example `value` that is not `realistic`, with where it is."""
    if isinstance(value, list):
        return [found for item in value for found in unrealistic(item, where)]
    if not isinstance(value, dict):
        return []
    found = [f"{where}.{k} = {v!r}" for k, v in value.items() if not realistic(k, v)]
    return found + [f for k, v in value.items() for f in unrealistic(v, f"{where}.{k}")]


def test_the_examples_look_like_what_the_api_answers() -> None:
    """Every request body and successful answer, rendered as a docs page renders it."""
    document = create_app(SETTINGS).openapi()
    schemas = document["components"]["schemas"]
    rendered = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            bodies = {"request": operation.get("requestBody", {})} | {
                status: answer for status, answer in operation["responses"].items()
                if status.startswith("2")
            }  # fmt: skip
            for part, body in bodies.items():
                for media_type, content in body.get("content", {}).items():
                    if "schema" in content:
                        where = f"{method.upper()} {path} {part} {media_type}"
                        rendered[where] = example_of(content["schema"], schemas)
    assert len(rendered) > 30
    assert [
        problem for where, body in rendered.items() for problem in unrealistic(body, where)
    ] == []
    me = rendered["GET /api/v1/users/me 200 application/json"]
    assert me["id"].startswith("usr_")
    assert rendered[f"POST {SIGNUP} request application/json"]["email"] == "ada@example.com"


# 422


def test_a_422_is_documented_only_where_a_request_can_fail_validation() -> None:
    document = create_app(SETTINGS).openapi()
    responses = {
        f"{method.upper()} {path}": operation["responses"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    # Nothing to validate: no body, no parameter, or only a path id any string satisfies.
    for operation in (
        "GET /api/v1/users/me",
        "DELETE /api/v1/users/me",
        "GET /api/v1/users/{user_id}",
        "GET /api/v1/auth/jwks.json",
        "POST /api/v1/auth/verify/request",
        "POST /api/v1/auth/token",  # its own errors are OAuth2 400s
        "GET /api/v1/auth/oauth/providers",
        "POST /api/v1/uploads/{upload_id}/complete",
        "GET /health/live",
    ):
        assert "422" not in responses[operation], operation
    # A body, a bounded query parameter.
    for operation in (f"POST {SIGNUP}", "PATCH /api/v1/users/me", "GET /api/v1/users"):
        validation = responses[operation]["422"]["content"]["application/problem+json"]
        assert validation["schema"] == {"$ref": "#/components/schemas/ValidationProblem"}
    assert not {"HTTPValidationError", "ValidationError"} & document["components"]["schemas"].keys()


async def test_what_the_document_leaves_without_422_does_not_answer_one(
    app_client: AppFactory,
) -> None:
    """Any string passes validation as a path id: a malformed one is a 404, as an id that
    does not exist. The OAuth2 form answers its own errors, as 400s."""
    async with app_client(enabled_plugins="user,auth,mail") as client:
        body = {"email": "reader@example.com", "password": PASSWORD, "name": "Reader"}
        signed_up = await client.post(SIGNUP, json=body)
        assert signed_up.status_code == 201, signed_up.text
        bearer = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
        user = await client.get("/api/v1/users/not%20an%20id!", headers=bearer)
        session = await client.delete("/api/v1/auth/sessions/%F0%9F%94%91", headers=bearer)
        token = await client.post("/api/v1/auth/token", json={"grant_type": 5})
    assert_problem(user, 404, "user.not_found")
    assert_problem(session, 404, "auth.session_not_found")
    assert_problem(token, 400, "auth.invalid_request")


# Limits


def bounds(document: dict[str, Any], schema: str, field: str) -> tuple[int | None, int | None]:
    prop = document["components"]["schemas"][schema]["properties"][field]
    return prop.get("minLength"), prop.get("maxLength")


def test_the_documented_limits_are_the_configured_ones() -> None:
    configured = create_app(
        SETTINGS,
        plugin_settings={
            "user": {"max_name_length": 40},
            "auth": {"password_min_length": 12, "password_max_length": 100},
        },
    ).openapi()
    default = create_app(SETTINGS).openapi()  # built after: nothing carries over
    names = [("UserCreate", "name"), ("ProfileUpdate", "name"), ("AdminUpdate", "name")]
    for schema, field in [*names, ("SignupRequest", "name")]:
        assert bounds(configured, schema, field)[1] == 40, schema
        assert bounds(default, schema, field)[1] == 100, schema
    new_passwords = [("SignupRequest", "password"), ("PasswordChange", "new_password")]
    for schema, field in [*new_passwords, ("ResetConfirm", "new_password")]:
        assert bounds(configured, schema, field) == (12, 100), schema
        assert bounds(default, schema, field) == (8, 1024), schema
    for schema, field in [("LoginRequest", "password"), ("PasswordChange", "current_password")]:
        assert bounds(configured, schema, field) == (1, 100), schema
        assert bounds(default, schema, field) == (1, 1024), schema
    assert "x-courtyard" not in str(configured)


async def test_a_name_as_long_as_documented_is_taken_and_one_longer_is_refused(
    app_client: AppFactory,
) -> None:
    async with app_client(
        enabled_plugins="user,auth,mail", plugin_settings={"user": {"max_name_length": 40}}
    ) as client:
        document = (await client.get("/openapi.json")).json()
        _, longest = bounds(document, "SignupRequest", "name")
        assert longest == 40

        async def sign_up(email: str, name: str) -> httpx.Response:
            body = {"email": email, "password": PASSWORD, "name": name}
            return await client.post(SIGNUP, json=body)

        taken = await sign_up("long@example.com", "n" * longest)
        refused = await sign_up("longer@example.com", "n" * (longest + 1))
    assert taken.status_code == 201, taken.text
    problem = assert_problem(refused, 422, "core.validation_error")
    assert [error["field"] for error in problem["errors"]] == ["name"]
