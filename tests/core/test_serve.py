"""`courtyard serve` as a process manager sees it: its exit status.

A clean stop on SIGTERM (systemd, Kubernetes, a rolling update) or SIGINT (Ctrl+C) exits 0;
a server that could not start exits non-zero. The real console script runs in its own
process on a free port, configured through the environment alone. (The drain on SIGTERM
is tested end to end in tests/resilience/test_shutdown.py; its ASGI part here.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest
from starlette.types import Message, Receive, Scope, Send

from core.cli.draining import CloseWhileDraining
from core.state import Lifecycle
from tests.support.courtyard_cli import PROJECT_ROOT, run_courtyard
from tests.support.served import STOP_DEADLINE, server_output, serving, wait_until_live


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "COURTYARD_ENABLED_PLUGINS": "user",
        "COURTYARD_ENV": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
    }


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_graceful_stop_exits_0(tmp_path: Path, stop: signal.Signals) -> None:
    """Stops `courtyard serve` ending with status 143 (killed by the SIGTERM uvicorn raises
    again after its graceful shutdown), which a process manager reports as a failure."""
    log = tmp_path / "serve.log"
    with serving(environment(tmp_path), tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        process.send_signal(stop)
        status = process.wait(timeout=STOP_DEADLINE)

    output = server_output(log)
    assert status == 0, output
    assert "Application shutdown complete" in output, output
    assert "Finished server process" in output, output
    assert "Traceback" not in output, output


def test_a_server_that_cannot_start_exits_non_zero(tmp_path: Path) -> None:
    """The port is taken: uvicorn fails to bind, and the status says so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result: subprocess.CompletedProcess[str] = run_courtyard(
            "serve", "--host", "127.0.0.1", "--port", str(port),
            cwd=tmp_path, env=environment(tmp_path), timeout=60,
        )  # fmt: skip
    assert result.returncode != 0, result
    assert "address already in use" in result.stderr, result.stderr


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _sent(app: CloseWhileDraining, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_responses_close_their_connection_only_while_draining() -> None:
    """Stops a pooled keep-alive connection being reused through the drain until uvicorn's
    shutdown closes it under a request; and stops every response closing its connection
    when the server is not draining."""
    lifecycle = Lifecycle()
    app = CloseWhileDraining(_answer, lifecycle)
    http: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

    before = await _sent(app, http)
    lifecycle.draining = True
    during = await _sent(app, http)

    assert before[0]["headers"] == [(b"x-a", b"1")]
    assert during[0]["headers"] == [(b"x-a", b"1"), (b"connection", b"close")]
    assert [m["type"] for m in during] == ["http.response.start", "http.response.body"]
    # Other scopes (lifespan, websocket) go through untouched, draining or not.
    assert (await _sent(app, {"type": "websocket"}))[0]["headers"] == [(b"x-a", b"1")]
