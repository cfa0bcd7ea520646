"""Prometheus metrics at `GET /metrics` (`COURTYARD_METRICS=true`; docs/operations.md).

`create_app` imports this module only with the setting on: off, there is no route, no
middleware, and prometheus_client is never loaded. Each app has a `CollectorRegistry` of
its own (never the library's global one), so apps built one after another in a process
(tests, tools) neither share nor clash over a metric.

- `courtyard_http_requests_total{method, route, status}` and the histogram
  `courtyard_http_request_duration_seconds{method, route}`, kept by a pure-ASGI middleware
  outside the request-context one, so that it sees every answer, the problems that
  middleware sends itself included. `route` is the matched route's template
  (`/api/v1/users/{user_id}`, `/docs/assets/{path}`), never the raw path, so that label
  values stay few; a request no route matches is `unmatched`.
- `courtyard_db_pool_connections_in_use{engine}`, `…_idle{engine}` and
  `courtyard_db_pool_checkouts_waiting{engine}`, read from the pools at scrape time.
- the process_*, python_gc_* and python_info metrics of prometheus_client's own collectors.
- what the enabled plugins return from their `register_metrics` hook.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db.engine import Database
from core.kernel import Kernel
from core.plugin import PluginError

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install_metrics(app: FastAPI, kernel: Kernel) -> None:
    """Give `app` its registry, the HTTP middleware (outside every middleware added before)
    and `GET /metrics` (left out of the OpenAPI schema). PluginError naming the plugin when
    what one registers is no collector, clashes with a metric already there, or fails as
    the registry reads it."""
    registry = CollectorRegistry(auto_describe=True)
    for standard in (ProcessCollector, PlatformCollector, GCCollector):
        standard(registry=registry)
    requests = Counter(
        "courtyard_http_requests",
        "HTTP requests answered, by method, route template and status",
        ("method", "route", "status"),
        registry=registry,
    )
    duration = Histogram(
        "courtyard_http_request_duration_seconds",
        "Time from a request's arrival to the end of its answer, by method and route template",
        ("method", "route"),
        registry=registry,
    )
    registry.register(PoolCollector(kernel.container.database))
    for plugin, collectors in kernel.collect("register_metrics"):
        for collector in collectors:
            _register(registry, plugin, collector)
    app.add_middleware(
        HttpMetrics, requests=requests, duration=duration, templates=RouteTemplates(app)
    )

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)


def _register(registry: CollectorRegistry, plugin: str, collector: Any) -> None:
    if not callable(getattr(collector, "collect", None)):
        raise PluginError(
            f"plugin {plugin!r}: register_metrics returned a {type(collector).__name__}, "
            "not a Prometheus collector (an object with a collect() method)"
        )
    try:
        registry.register(collector)
    except Exception as exc:  # a name taken (a ValueError), or its describe()/collect() failed
        reason = " ".join(str(exc).split())  # one line, whatever the collector raised
        raise PluginError(
            f"plugin {plugin!r}: register_metrics: {type(exc).__name__}: {reason}"
        ) from None


class RouteTemplates:
    """The template of the route the router matched, found by the route object it puts in
    the scope. (FastAPI puts there the route as its router declared it: the path of a
    plugin's route lacks the prefix its router is included under.) Learnt from the app's
    routes the first time each route is seen.

    FastAPI names only its own routes in the scope. The app's plain Starlette routes (the
    OpenAPI schema, the docs pages, the `/docs/assets` mount) are matched again, as the
    router matched them, against the path the request came with."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.known: dict[int, str] = {}

    def of(self, scope: Scope, requested: Scope) -> str:
        """The template of the route that served `scope`, the request as it is now;
        `requested` holds its `type`, `method`, `path` and `root_path` as it arrived."""
        route = scope.get("route")
        if route is None:
            return self._unnamed(requested)
        template = self.known.get(id(route))
        if template is None:
            self._learn()
            own = getattr(route, "path_format", None) or getattr(route, "path", None)
            template = self.known.setdefault(id(route), own or UNMATCHED)
        return template

    def _learn(self) -> None:
        for context in iter_route_contexts(self.app.routes):
            if context.path_format:
                self.known.setdefault(id(context.original_route), context.path_format)

    def _unnamed(self, requested: Scope) -> str:
        """The template of the app's Starlette route or mount the request matches (a
        full match first, else one for another method: a 405), or `unmatched`."""
        partial: str | None = None
        for route in self.app.router.routes:
            if not isinstance(route, Route | Mount) or isinstance(route, APIRoute):
                continue
            match, _ = route.matches(requested)
            if match is Match.FULL:
                return route.path_format
            if match is Match.PARTIAL and partial is None:
                partial = route.path_format
        return partial or UNMATCHED


class HttpMetrics:
    """Counts every HTTP request, and times it, by method, route template and status."""

    def __init__(
        self, app: ASGIApp, *, requests: Counter, duration: Histogram, templates: RouteTemplates
    ) -> None:
        self.app = app
        self.requests = requests
        self.duration = duration
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        # The router and a mount change the scope's paths: what the request came with.
        requested = {
            "type": "http",
            "method": scope["method"],
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
        }

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            status = status or 500  # what the server answers for it
            raise
        finally:
            if status is not None:  # else cancelled (the client left) before any answer
                method = scope["method"] if scope["method"] in _METHODS else OTHER_METHOD
                route = self.templates.of(scope, requested)
                self.requests.labels(method, route, str(status)).inc()
                self.duration.labels(method, route).observe(time.perf_counter() - started)


class PoolCollector:
    """The database pools' connections as the scrape finds them, by engine (`primary`, and
    `replica` when reads have one). A pool that keeps no count (SQLite's in-memory
    database) is left out; `…_waiting` only from the pools Courtyard gives PostgreSQL."""

    def __init__(self, database: Callable[[], Database]) -> None:
        self.database = database

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use, idle, waiting = self._families()
        database = self.database()
        engines: list[tuple[str, AsyncEngine]] = [("primary", database.write_engine)]
        if database.has_replica:
            engines.append(("replica", database.read_engine))
        for name, engine in engines:
            pool = engine.pool
            if not isinstance(pool, QueuePool):
                continue
            in_use.add_metric([name], pool.checkedout())
            idle.add_metric([name], pool.checkedin())
            under_way = getattr(pool, "checkouts_under_way", None)
            if under_way is not None:
                waiting.add_metric([name], under_way)
        yield from (in_use, idle, waiting)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "courtyard_db_pool_connections_in_use",
                "Database connections checked out of the pool",
                labels=["engine"],
            ),
            GaugeMetricFamily(
                "courtyard_db_pool_connections_idle",
                "Open database connections waiting in the pool",
                labels=["engine"],
            ),
            GaugeMetricFamily(
                "courtyard_db_pool_checkouts_waiting",
                "Callers waiting for a database connection (a free one, or one being opened)",
                labels=["engine"],
            ),
        )
