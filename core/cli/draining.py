"""The drain on SIGTERM of `courtyard serve`: uvicorn's server, made to stop in two steps.

Why it exists: a load balancer takes an instance out of rotation only after its health
check has failed a few times, and keeps sending it requests until then. uvicorn stops
accepting connections at once on SIGTERM, so those requests would find a closed port. A
`DrainingServer` drains first (COURTYARD_SHUTDOWN_DRAIN seconds): `/health/ready` answers
503 at once, every route and `/health/live` keep serving, new connections included; then
uvicorn shuts down as always (in-flight requests finished, the lifespan shutdown run).

While draining, every response to a request received after SIGTERM carries `Connection:
close` (`CloseWhileDraining`), so that the keep-alive connections a balancer or client
pools are closed one by one, each after an answered request, rather than reused until
uvicorn's shutdown closes the idle ones under a request racing that close (a reset). Both
of uvicorn's HTTP/1.1 protocols (h11, httptools) close the connection after a response
with that header.

The drain applies to one worker process without `--reload`: that is where `courtyard
serve` runs its own `uvicorn.Server` (`serve_draining`). With `--workers N` uvicorn's
supervisor builds the workers' servers itself, and with `--reload` a restart must not wait;
both, and plain `uvicorn --factory core.app:create_app`, stop as uvicorn does, without a
drain.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE

from core.state import Lifecycle

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger("courtyard.serve")

_CLOSE = (b"connection", b"close")


class CloseWhileDraining:
    """Pure ASGI: a request received while `lifecycle.draining` is answered with
    `Connection: close`, which makes uvicorn close the connection after the response.

    Not draining, a request costs one attribute read (and this call): it goes on with the
    server's own `send`. Whether to close is settled when the request arrives, so a request
    already in flight at SIGTERM keeps its connection: the next request on it during the
    drain closes it, and uvicorn's shutdown closes it if it is still busy then.
    """

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.lifecycle.draining or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _CLOSE]
            await send(message)

        await self.app(scope, receive, send_closing)


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
            self._drain_tick(self._drain_signal)
        return await super().on_tick(counter)

    def _drain_tick(self, sig: int) -> None:
        """One tick of the drain: log its start once; end it when a second signal came or
        its time is up (then hand `sig` to uvicorn, which shuts down)."""
        if not self._drain_logged:
            self._drain_logged = True
            logger.info(
                "SIGTERM: draining for %gs (/health/ready answers 503, requests are still "
                "served, connections closed after their response), then shutting down; "
                "SIGTERM or SIGINT again to stop now",
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


def serve_draining(app: FastAPI, drain: float, options: dict[str, Any]) -> None:
    """Serve `app` (already built: it holds the lifecycle the server sets) as `uvicorn.run`
    would with one worker, through a DrainingServer; exit as `uvicorn.run` does when the
    server failed to start."""
    lifecycle: Lifecycle = app.state.kernel.lifecycle
    config = uvicorn.Config(CloseWhileDraining(app, lifecycle), **options)
    server = DrainingServer(config, lifecycle=lifecycle, drain=drain)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
