"""The request path of the built-in plugins stays on the event loop.

FastAPI runs a plain `def` dependency or endpoint in a worker thread, a thread hop on
every request (and, while password hashes run in threads, a wait for the GIL). Every
dependency and endpoint of the built-in routes is `async def`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import OAuth2PasswordRequestForm

from core.app import create_app
from core.settings import CoreSettings

# The OAuth2 password form of `/auth/token` (Swagger's Authorize button): FastAPI's own
# class, not on a hot path.
ALLOWED = {OAuth2PasswordRequestForm}


def calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def runs_on_the_loop(call: Any) -> bool:
    target = call if inspect.isroutine(call) or inspect.isclass(call) else call.__call__
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def test_every_dependency_and_endpoint_of_the_built_in_routes_is_async() -> None:
    app = create_app(CoreSettings(database_url="sqlite+aiosqlite:///:memory:"))
    routes = [  # each route as included: its path and dependencies are the router's too
        route
        for route in iter_route_contexts(app.router.routes)
        if isinstance(route.original_route, APIRoute)
    ]
    assert len(routes) > 30
    threaded = sorted(
        f"{method} {route.path}: {getattr(call, '__qualname__', call)!r}"
        for route in routes
        for method in sorted(route.methods or ())
        for call in calls(route.dependant)
        if call not in ALLOWED and not runs_on_the_loop(call)
    )
    assert threaded == []
