"""`mount(app, router, ...)`: add a router's routes to the app as flat routes.

FastAPI's `include_router` keeps an included router as one nested route, and every
request walks each nested router in turn, re-matching its routes with scope bookkeeping
on the way: a per-request cost that grows with every plugin. Copying the routes onto the
app, the way `include_router` itself did before FastAPI 0.120, matches each request
against one flat list instead. The OpenAPI document is the same either way (a test
compares them). A router holding anything but plain `APIRoute`s (a mount, a nested
router, a websocket) is included the usual way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


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
    if not all(type(route) is APIRoute for route in routes):
        app.include_router(router, prefix=prefix, tags=list(tags), responses=responses)
        return
    for route in routes:
        assert isinstance(route, APIRoute)
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            methods=route.methods,
            name=route.name,
            tags=[*tags, *route.tags],
            responses={**(responses or {}), **route.responses},
            dependencies=route.dependencies,
            response_model=route.response_model,
            status_code=route.status_code,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            deprecated=route.deprecated,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
        )
