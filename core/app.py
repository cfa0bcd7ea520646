"""`create_app(settings)`: the one place an app is assembled. Nothing happens at import."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from core import __version__
from core.api_docs import add_docs_routes
from core.cors import add_cors
from core.db.engine import Database
from core.errors import install_error_handlers, problem_responses
from core.forwarded import apply_forwarded_headers, refuse_untrusted_forwarded
from core.health import add_health_routes
from core.hooks import call_hook
from core.hookspecs import Degraded, NotReady, ReadinessCheck
from core.kernel import Kernel
from core.logging import configure_logging, keep_parameters_out_of_logs
from core.middleware import RequestContextMiddleware
from core.openapi import API_DESCRIPTION, document_problems
from core.openapi_limits import state_setting_bounds
from core.plugin import API_PREFIX, Plugin, PluginError
from core.revision_graph import BranchWatch, MigrationError
from core.settings import CoreSettings
from core.state import AppState

logger = logging.getLogger("courtyard.app")
# FastAPI's native OpenTelemetry, off unless asked for: even with no provider configured it
# checks the global providers on every request.
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: CoreSettings | None = None,
    *,
    plugin_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> FastAPI:
    """Build the app: settings → plugins → container → routes. Raises ConfigurationError."""
    with collector_paused():
        return _assemble(settings, plugin_settings)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection while the app is built. Building it makes hundreds of
    thousands of long-lived objects (modules, models, routes) and almost no garbage, so
    the collections it would trigger, each walking the objects made so far, only add
    time. (One pass over what the build made still follows, when collection resumes.)"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _assemble(
    settings: CoreSettings | None, plugin_settings: Mapping[str, Mapping[str, Any]] | None
) -> FastAPI:
    keep_parameters_out_of_logs()
    kernel = Kernel.build(settings, plugin_settings=plugin_settings)
    configure_logging(kernel.settings)  # unless already set up: see core/logging.py
    app = FastAPI(
        title="Courtyard",
        description=API_DESCRIPTION,
        # Served by `add_docs_routes` from the app itself, not from a CDN.
        docs_url=None,
        redoc_url=None,
        telemetry=None if kernel.settings.opentelemetry else _NO_TELEMETRY,
        version=__version__,
        lifespan=_lifespan,
        openapi_tags=[{"name": "health", "description": "Liveness and readiness."}]
        + [
            {"name": p.openapi_tag, "description": p.description}
            for p in kernel.plugins
            if p.router
        ],
    )
    app.state = AppState(kernel)  # the one object kept there: see core.state
    install_error_handlers(app)
    document_problems(app)
    state_setting_bounds(app, kernel.plugin_settings)
    # Each added outside those before. A request meets: forwarded headers, CORS, metrics,
    # the request context, the untrusted-forwarded refusal, the plugins' middleware (plugin
    # order), then the routes. (A refused request reaches no plugin's middleware.)
    for middleware in reversed(kernel.middleware()):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(refuse_untrusted_forwarded, allow_ips=kernel.settings.forwarded_allow_ips)
    app.add_middleware(RequestContextMiddleware, max_body=kernel.settings.max_request_body)
    if kernel.settings.metrics:
        from core.metrics import install_metrics  # prometheus_client only when asked for

        install_metrics(app, kernel)
    add_cors(app, kernel.settings)
    app.add_middleware(apply_forwarded_headers, allow_ips=kernel.settings.forwarded_allow_ips)
    add_docs_routes(app)
    add_health_routes(app)
    for plugin in kernel.plugins:  # validated: no two share a prefix
        if plugin.router is not None:
            app.include_router(
                _build_router(plugin, kernel),
                prefix=f"{API_PREFIX}/{plugin.url_prefix}",
                tags=[plugin.openapi_tag],
                responses=problem_responses(500),  # 422 where it can be: core/openapi.py
            )
    return app


def _build_router(plugin: Plugin, kernel: Kernel) -> APIRouter:
    target = plugin.resolve(plugin.router or "")
    try:
        router = (
            target if isinstance(target, APIRouter) else target(kernel.container_of(plugin.name))
        )
    except Exception as exc:
        raise PluginError(
            f"plugin {plugin.name!r}: router {plugin.router!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(router, APIRouter):
        raise PluginError(
            f"plugin {plugin.name!r}: router {plugin.router!r} did not give an APIRouter"
        )
    return router


def _core_checks(database: Database, branches: BranchWatch) -> list[ReadinessCheck]:
    async def migrations() -> None:
        """Unready while an enabled plugin's branch is behind. Only degraded while
        `alembic_version` holds the row of a plugin no longer installed: the installed
        plugins' tables are as they should be."""
        try:
            survey = await branches.survey(database.write_engine)
        except MigrationError as exc:
            raise NotReady(str(exc)) from exc
        orphaned = (
            f"orphaned: revision {', '.join(survey.orphaned)} of a plugin no longer "
            "installed (see `courtyard db current`)"
        )
        if survey.behind:
            behind = f"not at head: {', '.join(survey.behind)} (run `courtyard db upgrade`)"
            raise NotReady(f"{behind}; {orphaned}" if survey.orphaned else behind)
        if survey.orphaned:
            raise Degraded(orphaned)

    checks = [ReadinessCheck("database", database.ping), ReadinessCheck("migrations", migrations)]
    monitor = database.replica
    if monitor is not None:

        async def replica() -> None:
            """Degraded, never unready: reads then go to the primary. As the monitor last
            saw it: a probe never waits for the replica itself."""
            if not monitor.checked:
                raise Degraded("not checked yet, reads go to the primary")
            if monitor.trouble is not None:
                raise Degraded(f"{monitor.trouble}, reads go to the primary")

        checks.append(ReadinessCheck("database.replica", replica))
    return checks


def _freeze_startup_objects() -> None:
    """Move everything made at startup (modules, models, routes, containers: hundreds of
    thousands of objects that live as long as the process) out of the garbage collector's
    reach. Otherwise every full collection walks them all again, a pause on the request
    that triggers it. (No collection first: that would add a full pass to every start, and
    startup leaves little cyclic garbage.) Undone at shutdown, so a process that builds
    apps one after another (a test run) can still free the old ones."""
    gc.freeze()
    logger.debug("%d objects made at startup frozen out of the collector", gc.get_freeze_count())


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    kernel: Kernel = app.state.kernel
    settings = kernel.settings
    if settings.env == "development" and settings.uses_development_secret:
        logger.warning(
            "COURTYARD_SECRET_KEY is the public development default: anyone can sign tokens "
            "for this server. Set a strong secret (and COURTYARD_ENV=production) before "
            "anyone else can reach it."
        )
    root = kernel.container
    database: Database = root.database()
    branches = BranchWatch(kernel)
    started: list[str] = []
    stop_tracing = _start_tracing(database) if settings.opentelemetry else None
    # A child process reads the plugins' revisions while the rest of startup goes on.
    reading = asyncio.create_task(branches.load())
    try:  # however startup ends, started plugins are stopped and the engines disposed
        await database.start()  # watching the replica, if any; stopped by `dispose`
        checks = (*_core_checks(database, branches), *kernel.readiness_checks())
        root.readiness_checks.set_provides(checks)
        for name in kernel.plugin_names:
            try:
                await call_hook(kernel.pm.hook.startup, only={name}, app=app)
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed to start: {exc}") from exc
            started.append(name)
        if (unreadable := await reading) is not None:
            logger.error("%s", unreadable)  # and /health/ready says so; the app still serves
        _freeze_startup_objects()
        yield
    finally:
        reading.cancel()  # when startup failed first (a finished read is left as it is)
        for name in reversed(started):
            try:
                await call_hook(kernel.pm.hook.shutdown, only={name}, app=app)
            except Exception as exc:  # one plugin's failure must not keep the others running
                logger.exception("plugin %r failed to stop: %s", name, exc)
        if stop_tracing is not None:
            stop_tracing()
        await database.dispose()
        gc.unfreeze()


def _start_tracing(database: Database) -> Callable[[], None]:
    from core.telemetry import start_tracing  # OpenTelemetry's SDK parts only when on

    return start_tracing(database)
