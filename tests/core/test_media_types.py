"""The media type of a request body: every route that takes JSON refuses anything else with
415, once, in the core (core/middleware.py), whichever plugin owns the route.

Before, FastAPI left a body of another type unparsed and answered 422 for a "missing"
body, which tells a client nothing about what it got wrong.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict

from core.app import create_app
from tests.conftest import AppFactory, make_settings
from tests.support.problems import assert_problem

BUILT_IN = "user,auth,mail,oauth,upload"
AUTH = "/api/v1/auth"
WRONG_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
BODY = b'{"email": "ann@example.com", "password": "a long passphrase"}'


def json_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route whose body FastAPI reads as JSON, path parameters
    filled in with a made-up id."""
    found: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.router.routes):  # through the included routers
        if not isinstance(route.original_route, APIRoute) or route.body_field is None:
            continue
        if "Form" in type(route.body_field.field_info).__name__:
            continue
        path = re.sub(r"\{[^}]+\}", "xyz_01J0000000000000000000000", route.path or "")
        found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def assert_unsupported(response: httpx.Response, sent: str | None) -> None:
    body = assert_problem(response, 415, "core.unsupported_media_type")
    assert "application/json" in body["detail"], body
    assert (sent or "no Content-Type") in body["detail"], body


async def test_every_json_route_answers_415_to_a_body_of_another_type(
    app_client: AppFactory, tmp_path: Any
) -> None:
    """Stops a 422 "field required" (or a parse of the wrong thing) for a body sent with the
    wrong Content-Type, on every JSON route of every built-in plugin, before anything else
    (authentication included) looks at the request; a body sent without any type too."""
    uploads = {"upload": {"local_root": str(tmp_path / "uploads")}}
    async with app_client(enabled_plugins=BUILT_IN, plugin_settings=uploads) as client:
        routes = json_routes(client.app)  # type: ignore[attr-defined]
        assert ("POST", f"{AUTH}/login") in routes
        assert ("PATCH", "/api/v1/users/me") in routes
        assert ("POST", "/api/v1/uploads") in routes
        assert ("POST", f"{AUTH}/oauth/identities/xyz_01J0000000000000000000000") in routes
        assert ("POST", f"{AUTH}/token") not in routes  # a form: see the test below

        for method, path in routes:
            for content_type in WRONG_TYPES:
                headers = {"content-type": content_type}
                response = await client.request(method, path, content=BODY, headers=headers)
                assert response.status_code == 415, (method, path, content_type, response.text)
                assert_unsupported(response, content_type)
            untyped = await client.request(method, path, content=BODY)
            assert_unsupported(untyped, None)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/merge-patch+json",
    ],
)
async def test_json_and_json_suffixed_types_are_accepted(
    app_client: AppFactory, content_type: str
) -> None:
    """Stops the check refusing JSON a client labels correctly: a charset parameter, any
    case, and `application/*+json` types reach the route (here, a sign-up and a sign-in)."""
    async with app_client(enabled_plugins="user,auth,mail") as client:
        headers = {"content-type": content_type}
        body = b'{"email": "ann@example.com", "password": "a long passphrase", "name": "Ann"}'
        signup = await client.post(f"{AUTH}/signup", content=body, headers=headers)
        login = await client.post(f"{AUTH}/login", content=BODY, headers=headers)

    assert signup.status_code == 201, signup.text
    assert login.status_code == 200, login.text


async def test_the_token_form_and_bodiless_requests_are_not_json_routes(
    app_client: AppFactory,
) -> None:
    """The OAuth2 token endpoint keeps taking its form body, and a JSON route called with
    no body at all still gets the 422 naming the missing body, not a 415."""
    async with app_client(enabled_plugins="user,auth,mail") as client:
        await client.post(
            f"{AUTH}/signup",
            json={"email": "ann@example.com", "password": "a long passphrase", "name": "Ann"},
        )
        form = await client.post(
            f"{AUTH}/token", data={"username": "ann@example.com", "password": "a long passphrase"}
        )
        empty = await client.post(f"{AUTH}/login")

    assert form.status_code == 200, form.text
    body = assert_problem(empty, 422, "core.validation_error")
    assert [e["field"] for e in body["errors"]] == ["body"], body


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def app_with_bodies(tmp_path: Path) -> FastAPI:
    """An app without plugins, with a JSON route whose body is optional and a route that
    declares a body of another media type."""
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bodies.db'}"))

    @app.post("/optional")
    async def optional(note: Note | None = None) -> dict[str, Any]:
        return {"note": note.text if note else None}

    @app.post("/plain")
    async def plain(text: Annotated[str, Body(media_type="text/plain")]) -> dict[str, Any]:
        return {"declared": "text/plain"}

    return app


async def chunked(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_only_a_body_that_is_there_and_declared_json_is_checked(tmp_path: Path) -> None:
    """Stops the check misfiring: an optional JSON body left out (some clients still send a
    Content-Type) reaches the route, and a route declaring another media type for its body
    is not a JSON route; a chunked body whose first chunk is empty is still checked."""
    transport = httpx.ASGITransport(app=app_with_bodies(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        form = {"content-type": "application/x-www-form-urlencoded"}
        empty = await client.post("/optional", headers=form)
        declared = await client.post(
            "/plain", content=b"just text", headers={"content-type": "text/plain"}
        )
        late = await client.post("/optional", content=chunked(b"", b'{"text": "x"}'))

    assert empty.status_code == 200, empty.text
    assert empty.json() == {"note": None}
    assert declared.status_code == 200, declared.text
    assert_unsupported(late, None)
