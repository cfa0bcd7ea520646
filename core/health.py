"""`/health/live` (the process answers) and `/health/ready` (it can do its work).

They are the app's own routes (`add_health_routes`), not an included router: FastAPI keeps
an included router nested, and a liveness probe, the cheapest and most frequent request,
would pay for the walk into it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from core.errors import problem_response, problem_responses
from core.hookspecs import Degraded, NotReady, ReadinessCheck
from core.state import root_container

if TYPE_CHECKING:
    from core.kernel import Kernel

logger = logging.getLogger("courtyard.health")


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checks": {"database": "ok", "migrations": "ok", "auth.rate_limits": "ok"},
                }
            ]
        }
    )

    status: str = Field(description="`ok`, or `degraded` when a check reports it is.")
    checks: dict[str, str] = Field(description="Each check's outcome, by name.")


_ALIVE = b'{"status":"ok"}'
_DEGRADED = "degraded: "  # an outcome that leaves the instance ready (`Degraded`)


async def live() -> Response:
    # A constant answer, sent as is: nothing to validate or encode on the cheapest route.
    return Response(_ALIVE, media_type="application/json")


async def _run_check(name: str, check: Callable[[], Awaitable[Any]], limit: float) -> str:
    """ "ok", "degraded: <reason>", or a short public reason it failed; the full error goes
    to the log only."""
    try:
        await asyncio.wait_for(check(), limit)
    except Degraded as exc:
        # At DEBUG: a load balancer probes every few seconds, and what degrades an instance
        # logs its own changes (as the replica monitor does).
        logger.debug("readiness check %s: degraded: %s", name, exc)
        return f"{_DEGRADED}{exc}"
    except NotReady as exc:
        logger.warning("readiness check %s: %s", name, exc)
        return f"failed: {exc}"
    except TimeoutError:
        logger.warning("readiness check %s timed out after %gs", name, limit)
        return f"timed out after {limit:g}s"
    except Exception as exc:
        logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return f"failed ({type(exc).__name__})"
    return "ok"


async def ready(request: Request) -> Any:
    kernel: Kernel = request.app.state.kernel
    if kernel.lifecycle.draining:
        # At once, no check run: a load balancer takes the instance out of rotation while
        # it still serves. No Retry-After: this instance will not be back.
        return problem_response(
            request,
            status=503,
            code="core.not_ready",
            detail="Shutting down: this instance is draining before it stops",
        )
    root = root_container(request)
    checks: tuple[ReadinessCheck, ...] = root.readiness_checks()
    timeout = root.settings().ready_timeout
    outcomes = await asyncio.gather(*(_run_check(c.name, c.check, timeout) for c in checks))
    results = {c.name: outcome for c, outcome in zip(checks, outcomes, strict=True)}
    failing = sorted(
        name
        for name, outcome in results.items()
        if outcome != "ok" and not outcome.startswith(_DEGRADED)
    )
    if failing:
        return problem_response(
            request,
            status=503,
            code="core.not_ready",
            detail=f"Failing checks: {', '.join(failing)}",
            headers={"Retry-After": "5"},
            extra={"checks": results},
        )
    degraded = any(outcome != "ok" for outcome in results.values())
    return JSONResponse({"status": "degraded" if degraded else "ok", "checks": results})


def add_health_routes(app: FastAPI) -> None:
    app.add_api_route(
        "/health/live",
        live,
        methods=["GET"],
        response_model=Liveness,
        summary="Liveness: the process answers",
        description="Always 200 while the process runs; for a probe that restarts a stuck "
        "process. It checks nothing else.",
        tags=["health"],
    )
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        response_model=Readiness,
        summary="Readiness: the instance can serve requests",
        description="200 when the database answers, migrations are at head, every plugin's "
        "checks pass and the instance is not shutting down; 503 with the failing checks "
        "otherwise. For a load balancer's health check.",
        responses=problem_responses(503),
        tags=["health"],
    )
