"""`courtyard serve`: run the app under uvicorn, draining on SIGTERM first.

On SIGTERM the server drains for COURTYARD_SHUTDOWN_DRAIN seconds (`/health/ready` answers
503, every route keeps serving, responses close their connection), then shuts down as
uvicorn does and the process exits 0. The drain itself, and why it exists, is in
core/cli/draining.py; it applies to one worker without `--reload`. Here: the command, the
logging options, and the exit status of a stop asked for with a signal.

Logging is `create_app`'s (core/logging.py), as under plain uvicorn: uvicorn is told to
configure none (`log_config=None`), its loggers go through Courtyard's handler at
`COURTYARD_LOG_LEVEL`, and its access log is off (`access_log=False`): the app writes one
access line per request itself (`courtyard.access`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated, Any

import typer
import uvicorn

from core.cli.context import CliContext
from core.cli.draining import serve_draining

logger = logging.getLogger("courtyard.serve")


# The signals uvicorn shuts down gracefully on (POSIX); SIGBREAK is Windows-only.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _clean_exit_on_stop() -> Iterator[None]:
    """Make a stop asked for with SIGTERM or SIGINT end the process with status 0.

    uvicorn catches these signals to shut down gracefully, then puts back the handlers it
    found and raises the signal again (`uvicorn.Server.capture_signals`), so that SIGTERM's
    default action kills the process: status 143 in a shell, which process managers take
    for a failure. The handlers installed here are the ones it puts back, so that re-raised
    signal exits 0 instead; uvicorn's own exits (1 or 3 when the server fails to start)
    are untouched. A signal that comes before uvicorn took over exits 0 too: nothing had
    started yet.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; uvicorn then sets none either
        return
    previous = {sig: signal.signal(sig, _exit_cleanly) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """Exit 0, unless an exception is already on its way out: it tells how serving ended
    (uvicorn raises the signal again even when the server then failed to start)."""
    if sys.exception() is None:
        raise SystemExit(0)


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the API with uvicorn; on SIGTERM, drain for COURTYARD_SHUTDOWN_DRAIN seconds
    (/health/ready answers 503 meanwhile) before shutting down."""
    from core.app import create_app

    cli: CliContext = ctx.obj
    settings = cli.kernel.settings
    app = create_app(settings)  # fail here, with one line, on bad configuration
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,  # create_app configured logging (in each worker too)
        "log_level": settings.log_level.lower(),
        "access_log": False,
        # A failure while starting (a plugin's startup hook, a middleware that cannot be
        # built) stops the server; uvicorn's "auto" would go on serving without lifespan.
        "lifespan": "on",
        # The app honours forwarded headers itself, from COURTYARD_FORWARDED_ALLOW_IPS
        # only (core/forwarded.py); uvicorn's own step would trust 127.0.0.1.
        "proxy_headers": False,
    }
    with _clean_exit_on_stop():
        if workers == 1 and not reload:
            serve_draining(app, settings.shutdown_drain, options)
            return
        if workers > 1 and settings.shutdown_drain > 0:
            logger.warning(
                "COURTYARD_SHUTDOWN_DRAIN does not apply with --workers: each worker stops "
                "at once on SIGTERM (run one worker per instance behind a load balancer)"
            )
        # uvicorn's supervisors start their servers from an import string.
        uvicorn.run("core.app:create_app", factory=True, workers=workers, reload=reload, **options)
