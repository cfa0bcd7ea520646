"""`mount(app, router, ...)`: add a router's routes to the app as flat routes.

FastAPI's `include_router` keeps an included router as one nested route, and every
request walks each nested router in turn, re-matching its routes with scope bookkeeping
on the way: a per-request cost that grows with every plugin. Copying the routes onto the
app, the way `include_router` itself did before FastAPI 0.120, matches each request
against one flat list instead. The OpenAPI document is the same either way (a test
compares them). A router holding anything but plain `APIRoute`s (a mount, a nested
router, a websocket) is included the usual way.

Each route is moved, not built again: building a route analyses the endpoint's whole
signature and makes a validator for every parameter and response model, which is most
of a plugin's start-up cost. Only what depends on the prefix, the tags or the added
responses is recomputed on a copy: the path pattern; the unique id, with the body model
and (where the name shows) the response field named after it; the added responses'
fields; and the request handler, which must see the app's dependency overrides.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from enum import Enum
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import _get_body_field, _get_flat_body_params
from fastapi.routing import APIRoute, request_response
from fastapi.utils import create_model_field
from pydantic import BaseModel
from starlette.routing import compile_path


def mount(
    app: FastAPI,
    router: APIRouter,
    *,
    prefix: str = "",
    tags: Sequence[str | Enum] = (),
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """Serve `router`'s routes under `prefix`, with `tags` and `responses` added to each."""
    routes = router.routes
    movable = "{" not in prefix and all(_movable(route) for route in routes)
    if not movable:
        app.include_router(router, prefix=prefix, tags=list(tags), responses=responses)
        return
    for route in routes:
        assert isinstance(route, APIRoute)
        app.router.routes.append(_moved(route, app, prefix, tags, responses or {}))


def _movable(route: object) -> bool:
    """A plain, non-streaming `APIRoute` whose options all came from the route itself: the
    router's own defaults are FastAPI's, so the app's router would resolve them the same
    way. (Anything else is included the usual way.)"""
    return (
        type(route) is APIRoute
        and isinstance(route.generate_unique_id_function, DefaultPlaceholder)
        and route.max_body_size is None
        and route.stream_item_type is None
    )


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _moved(
    route: APIRoute,
    app: FastAPI,
    prefix: str,
    tags: Sequence[str | Enum],
    responses: dict[int | str, dict[str, Any]],
) -> APIRoute:
    moved = copy.copy(route)
    moved.path = prefix + route.path
    moved.path_regex, moved.path_format, moved.param_convertors = compile_path(moved.path)
    moved.tags = [*tags, *route.tags]
    moved.responses = {**responses, **route.responses}
    generate = route.generate_unique_id_function
    assert isinstance(generate, DefaultPlaceholder)
    moved.unique_id = moved.operation_id or generate.value(moved)
    moved.response_fields = {
        status: route.response_fields[status]
        if status in route.responses
        else create_model_field(
            name=f"Response_{status}_{moved.unique_id}", type_=answer["model"], mode="serialization"
        )
        for status, answer in moved.responses.items()
        if answer.get("model")
    }
    if route.body_field is not None:
        moved.body_field = _get_body_field(
            body_params=_get_flat_body_params(route.dependant),
            name=moved.unique_id,
            embed_body_fields=route._embed_body_fields,
        )
    if route.response_field is not None and not _is_model(route.response_model):
        # A model's schema is a reference; any other type's takes its title from the name.
        moved.response_field = create_model_field(
            name="Response_" + moved.unique_id, type_=route.response_model, mode="serialization"
        )
    moved.dependency_overrides_provider = app.router.dependency_overrides_provider
    moved.app = request_response(moved.get_route_handler())
    return moved
