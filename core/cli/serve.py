"""`courtyard serve`: run the app under uvicorn, draining on SIGTERM first.

A load balancer takes an instance out of rotation only after its health check has failed
a few times, so an instance that stopped accepting connections at once on SIGTERM would
refuse the requests still sent to it meanwhile. `courtyard serve` therefore drains first
(COURTYARD_SHUTDOWN_DRAIN seconds): `/health/ready` answers 503 at once, every route and
`/health/live` keep serving, new connections included; then uvicorn shuts down as always
(in-flight requests finished, the lifespan shutdown run) and the process exits 0.

The drain applies to one worker process without `--reload`: that is where `courtyard
serve` runs its own `uvicorn.Server`. With `--workers N` uvicorn's supervisor builds the
workers' servers itself, and with `--reload` a restart must not wait; both, and plain
`uvicorn --factory core.app:create_app`, stop as uvicorn does, without a drain.
"""

from __future__ import annotations

import logging
import logging.config
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from uvicorn.config import STARTUP_FAILURE

from core.cli.context import CliContext
from core.logging import LOG_FORMAT
from core.state import Lifecycle

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger("courtyard.serve")


def _log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
        "formatters": {"default": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.access": {"level": level},
        },
    }


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


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM drains for `drain` seconds before shutting down.

    uvicorn calls `handle_exit` for SIGTERM and SIGINT (`capture_signals`) and checks
    `should_exit` in `on_tick`, every 0.1 s of its main loop; both are public. The first
    SIGTERM after startup sets `lifecycle.draining` (so that `/health/ready` answers 503
    from the next request on) instead of `should_exit`; the tick that finds the drain over
    hands the signal to uvicorn, which then shuts down and raises it again as for any stop.
    A second SIGTERM or SIGINT during the drain goes to uvicorn at once: the drain ends.
    SIGINT alone (Ctrl+C) stops at once, as does SIGTERM before the server listens.
    """

    def __init__(self, config: uvicorn.Config, *, lifecycle: Lifecycle, drain: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain = drain
        self._drain_signal: int | None = None  # the SIGTERM that started the drain
        self._drain_ends = 0.0  # time.monotonic() at which it ends
        self._drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only flags and numbers here (the tick logs).
        if (
            sig == signal.SIGTERM
            and self.drain > 0
            and self.started
            and self._drain_signal is None
            and not self.should_exit
        ):
            self.lifecycle.draining = True
            self._drain_ends = time.monotonic() + self.drain
            self._drain_signal = sig
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_signal is not None:
            self._follow_drain(self._drain_signal)
        return await super().on_tick(counter)

    def _follow_drain(self, sig: int) -> None:
        if not self._drain_logged:
            self._drain_logged = True
            logger.info(
                "SIGTERM: draining for %gs (/health/ready answers 503, requests are still "
                "served), then shutting down; SIGTERM or SIGINT again to stop now",
                self.drain,
            )
        if self.should_exit:
            logger.info("Drain ended early by a second signal")
        elif time.monotonic() >= self._drain_ends:
            logger.info("Drain over after %gs", self.drain)
            super().handle_exit(sig, None)
        else:
            return
        self._drain_signal = None  # over; `/health/ready` stays 503 until the process ends


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
        "log_config": _log_config(settings.log_level),
        # The app honours forwarded headers itself, from COURTYARD_FORWARDED_ALLOW_IPS
        # only (core/forwarded.py); uvicorn's own step would trust 127.0.0.1.
        "proxy_headers": False,
    }
    with _clean_exit_on_stop():
        if workers == 1 and not reload:
            _serve_draining(app, settings.shutdown_drain, options)
            return
        if workers > 1 and settings.shutdown_drain > 0:
            logging.config.dictConfig(options["log_config"])  # as uvicorn will, to log this
            logger.warning(
                "COURTYARD_SHUTDOWN_DRAIN does not apply with --workers: each worker stops "
                "at once on SIGTERM (run one worker per instance behind a load balancer)"
            )
        # uvicorn's supervisors start their servers from an import string.
        uvicorn.run("core.app:create_app", factory=True, workers=workers, reload=reload, **options)


def _serve_draining(app: FastAPI, drain: float, options: dict[str, Any]) -> None:
    """Serve `app` (already built: it holds the lifecycle the server sets) as `uvicorn.run`
    would with one worker, through a DrainingServer."""
    kernel = app.state.kernel
    server = DrainingServer(uvicorn.Config(app, **options), lifecycle=kernel.lifecycle, drain=drain)
    server.run()
    if not server.started:  # as uvicorn.run: the server failed to start
        sys.exit(STARTUP_FAILURE)
