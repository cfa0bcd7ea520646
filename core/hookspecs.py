"""Every hook the core calls, in one place. Plugins implement them with `@hookimpl`.

A plugin's hook implementations live in the module (or class) its descriptor names as
`hooks`. A class is instantiated once per app with the plugin's own container, so its
methods reach the plugin's services without globals. `register_*` hooks return
collections. Hooks may be plain functions or coroutines unless the spec says otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import FastAPI, Request
    from prometheus_client.registry import Collector
    from starlette.middleware import Middleware

    from core.identity import Principal

PROJECT = "courtyard"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class NotReady(Exception):
    """Raised by a readiness check; its message is safe to show in `/health/ready`."""


class Degraded(Exception):
    """Raised by a readiness check when the instance still does its work, with less (a
    replica skipped, a cache off): `/health/ready` shows `degraded: <message>` for the check
    and still answers 200, so that a load balancer keeps the instance. The message is safe
    to show."""


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """A named check `/health/ready` runs; `check` raises (or times out) when not ready.

    Raise `NotReady("reason")` to show the reason; other errors show only their type.
    Raise `Degraded("reason")` when the instance can still serve: the check is reported
    as degraded, with the reason, and does not make the instance unready.
    """

    name: str
    check: Callable[[], Awaitable[Any]]


@hookspec
def register_commands() -> Iterable[typer.Typer]:
    """Return typer apps to add to the `courtyard` command (unnamed ones get the plugin's name)."""
    raise NotImplementedError


@hookspec
def register_readiness_checks() -> Iterable[ReadinessCheck]:
    """Return the checks `/health/ready` runs for this plugin."""
    raise NotImplementedError


@hookspec
def register_middleware() -> Iterable[Middleware]:
    """Return ASGI middleware (`starlette.middleware.Middleware`) that sees every request,
    inside the core's request-id middleware (the first plugin's outermost)."""
    raise NotImplementedError


@hookspec
def register_metrics() -> Iterable[Collector]:
    """Return Prometheus collectors for `GET /metrics` (called only with COURTYARD_METRICS on)."""
    raise NotImplementedError


@hookspec
def startup(app: FastAPI) -> Awaitable[None] | None:
    """Prepare the plugin when the app starts (called in plugin order, may be async)."""


@hookspec
def shutdown(app: FastAPI) -> Awaitable[None] | None:
    """Release the plugin's resources when the app stops (reverse plugin order, may be async)."""


@hookspec(firstresult=True)
def authenticate(request: Request) -> Principal | None:
    """Return the Principal `request` proves, or None to let the next plugin try (may be async)."""


@hookspec
def check_principal(request: Request, principal: Principal) -> Principal | None:
    """Return `principal` as it stands now (e.g. with current roles), or None if it may not act.

    Called for every authenticated request, in plugin order, each check getting the previous
    one's result; None from any check makes the request unauthenticated (401). May be async.
    """
