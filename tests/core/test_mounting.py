"""Plugin routers are served as flat routes, with the same behaviour and OpenAPI document
as FastAPI's nested `include_router`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Form, Header, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel

from core.app import create_app
from core.mounting import mount
from core.settings import CoreSettings


class Item(BaseModel):
    id: int
    name: str


async def caller(x_caller: Annotated[str | None, Header()] = None) -> str:
    if x_caller is None:
        raise HTTPException(401, "who are you?")
    return x_caller


def sample_router() -> APIRouter:
    """Routes using the options a plugin router uses: models, codes, dependencies, tags."""
    router = APIRouter(tags=["inner"], dependencies=[Depends(caller)])

    @router.get("/items/{item_id}", response_model=Item, responses={404: {"description": "no"}})
    async def read(item_id: int, who: Annotated[str, Depends(caller)]) -> dict[str, object]:
        if item_id == 0:
            raise HTTPException(404, "no item 0")
        return {"id": item_id, "name": who, "dropped": True}

    @router.post("/items", status_code=201, response_model=Item, summary="Make one")
    async def create(item: Item) -> Item:
        return item

    @router.delete("/items/{item_id}", status_code=204, deprecated=True)
    async def delete(item_id: int) -> None:
        return None

    @router.get("/hidden", include_in_schema=False, operation_id="hidden_thing")
    async def hidden() -> dict[str, str]:
        return {"hidden": "yes"}

    @router.put("/pairs", responses={409: {"model": Item, "description": "taken"}})
    async def pair(first: Item, second: Item) -> dict[str, str]:
        """Two body parameters: an embedded body model named after the route's unique id;
        a response type that is not a model, whose schema title comes from that id too."""
        return {"names": f"{first.name}+{second.name}"}

    @router.post("/forms")
    async def form(name: Annotated[str, Form()], size: Annotated[int, Form()]) -> list[Item]:
        return [Item(id=size, name=name)]

    return router


def app_with(flat: bool) -> FastAPI:
    app = FastAPI()
    responses = {500: {"description": "boom"}, 418: {"model": Item, "description": "tea"}}
    if flat:
        mount(app, sample_router(), prefix="/api/things", tags=["things"], responses=responses)
    else:
        app.include_router(
            sample_router(), prefix="/api/things", tags=["things"], responses=responses
        )
    return app


async def answers(app: FastAPI) -> list[tuple[int, object, str | None]]:
    transport = httpx.ASGITransport(app=app)
    caller_c = {"x-caller": "c"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        calls = [
            client.get("/api/things/items/7", headers={"x-caller": "ann"}),
            client.get("/api/things/items/0", headers={"x-caller": "ann"}),
            client.get("/api/things/items/7"),
            client.get("/api/things/items/seven", headers={"x-caller": "ann"}),
            client.post(
                "/api/things/items", json={"id": 1, "name": "a"}, headers={"x-caller": "b"}
            ),
            client.put("/api/things/items/7", headers={"x-caller": "ann"}),
            client.delete("/api/things/items/7", headers={"x-caller": "ann"}),
            client.get("/api/things/hidden", headers={"x-caller": "ann"}),
            client.get("/api/things/nothing-here"),
            client.put(
                "/api/things/pairs",
                json={"first": {"id": 1, "name": "a"}, "second": {"id": 2, "name": "b"}},
                headers={"x-caller": "c"},
            ),
            client.put(
                "/api/things/pairs", json={"first": {"id": 1, "name": "a"}}, headers=caller_c
            ),
            client.post("/api/things/forms", data={"name": "f", "size": "3"}, headers=caller_c),
            client.post("/api/things/forms", data={"name": "f"}, headers=caller_c),
        ]
        results = []
        for call in calls:
            response = await call
            body = response.json() if response.content else None
            results.append((response.status_code, body, response.headers.get("allow")))
        return results


def test_the_openapi_document_is_the_same_as_with_include_router() -> None:
    assert app_with(flat=True).openapi() == app_with(flat=False).openapi()


async def test_requests_get_the_same_answers_as_with_include_router() -> None:
    flat, nested = await answers(app_with(flat=True)), await answers(app_with(flat=False))
    assert flat == nested
    assert flat[0] == (200, {"id": 7, "name": "ann"}, None)
    assert [status for status, _, _ in flat] == [
        *(200, 404, 401, 422, 201, 405, 204, 200, 404),
        *(200, 422, 200, 422),
    ]
    assert flat[9][1] == {"names": "a+b"}
    assert flat[11][1] == [{"id": 3, "name": "f"}]


def test_the_routes_are_moved_not_built_again() -> None:
    """Building a route analyses its endpoint's signature; the flat route reuses that."""
    router = sample_router()
    app = FastAPI()
    mount(app, router, prefix="/api/things", tags=["things"])
    built = {route.name: route for route in router.routes if isinstance(route, APIRoute)}
    moved = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert {route.name for route in moved} == set(built)
    for route in moved:
        assert route.dependant is built[route.name].dependant
        assert route.path == "/api/things" + built[route.name].path
    assert [route.path for route in router.routes] == [
        *("/items/{item_id}", "/items", "/items/{item_id}", "/hidden", "/pairs", "/forms")
    ]


def test_a_prefix_with_a_path_parameter_is_included_as_fastapi_does() -> None:
    app = FastAPI()
    mount(app, sample_router(), prefix="/api/{tenant}", tags=["things"])
    reference = FastAPI()
    reference.include_router(sample_router(), prefix="/api/{tenant}", tags=["things"])
    assert app.openapi() == reference.openapi()
    assert "/api/{tenant}/items" in app.openapi()["paths"]


async def test_dependency_overrides_reach_flat_routes() -> None:
    app = app_with(flat=True)
    app.dependency_overrides[caller] = lambda: "override"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/things/items/3")
    assert response.json() == {"id": 3, "name": "override"}


def test_a_router_with_a_nested_router_is_included_as_fastapi_does() -> None:
    outer = APIRouter()
    outer.include_router(sample_router(), prefix="/inner")
    app = FastAPI()
    mount(app, outer, prefix="/api/things", tags=["things"])
    reference = FastAPI()
    reference.include_router(outer, prefix="/api/things", tags=["things"])
    assert app.openapi() == reference.openapi()
    assert "/api/things/inner/items/{item_id}" in app.openapi()["paths"]


def test_courtyard_serves_every_plugin_route_flat() -> None:
    app = create_app(CoreSettings(database_url="sqlite+aiosqlite:///:memory:"))
    api_routes = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert len(api_routes) == len(app.router.routes) - 4  # openapi.json, docs, redirect, redoc
    paths = {route.path for route in api_routes}
    assert {"/health/live", "/api/v1/users/me", "/api/v1/auth/login", "/api/v1/uploads"} <= paths


def test_courtyard_openapi_is_what_include_router_would_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = CoreSettings(database_url="sqlite+aiosqlite:///:memory:")
    flat = create_app(settings).openapi()

    def nested(
        app: FastAPI,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        responses: dict[int | str, dict[str, Any]] | None = None,
    ) -> None:
        app.include_router(router, prefix=prefix, tags=list(tags), responses=responses)

    monkeypatch.setattr("core.app.mount", nested)
    assert flat == create_app(settings).openapi()
