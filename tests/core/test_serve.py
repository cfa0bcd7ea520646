"""`courtyard serve` as a process manager sees it: its exit status.

A clean stop on SIGTERM (systemd, Kubernetes, a rolling update) or SIGINT (Ctrl+C) exits 0;
a server that could not start exits non-zero. The real console script runs in its own
process on a free port, configured through the environment alone.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

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
