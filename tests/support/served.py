"""`courtyard serve` in its own process, as a deployment runs it, for tests over real TCP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.courtyard_cli import COURTYARD
from tests.support.plugin_selection import ENABLED, suite_plugins

STARTUP_DEADLINE = 20.0  # seconds for `courtyard serve` to answer /health/live
STOP_DEADLINE = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVE = (str(COURTYARD), "serve")
# Plain uvicorn, as the README documents it; its flags follow.
UVICORN = (sys.executable, "-m", "uvicorn", "--factory", "core.app:create_app")


@contextmanager
def serving(
    environment: dict[str, str], cwd: Path, log: Path, command: Sequence[str] = SERVE
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`courtyard serve` (or another `command` taking `--host` and `--port`) on a free local
    port, configured by `environment` alone (no other COURTYARD_* variable of the test
    process, nor uvicorn's FORWARDED_ALLOW_IPS, leaks in), its output going to `log`;
    terminated (killed if it will not stop) however the block ends. It stops at once on
    SIGTERM (COURTYARD_SHUTDOWN_DRAIN=0) unless `environment` asks for a drain."""
    port = free_port()
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COURTYARD_", "FORWARDED_ALLOW_IPS")) and key != "PYTHONPATH"
    }
    environ["COURTYARD_SHUTDOWN_DRAIN"] = "0"
    environ.update(environment)
    # The suite's plugins unless `environment` names them (`tests.support.plugin_selection`).
    environ.setdefault(ENABLED, suite_plugins(environ.get("PYTHONPATH", "").split(os.pathsep)))
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield f"http://127.0.0.1:{port}", process
        finally:
            stop_process(process)


def wait_or_kill(process: subprocess.Popen[str], timeout: float = STOP_DEADLINE) -> None:
    """Wait for `process` to end, killing it if it has not within `timeout` seconds."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def stop_process(process: subprocess.Popen[str], timeout: float = STOP_DEADLINE) -> None:
    """SIGTERM, then `wait_or_kill`: a test's helper process ends whatever its state."""
    process.terminate()
    wait_or_kill(process, timeout)


def server_output(log: Path) -> str:
    """What `courtyard serve` has printed so far (stdout and stderr), for failure messages."""
    return log.read_text()


async def wait_until_live(base_url: str, process: subprocess.Popen[str], log: Path) -> None:
    """Poll /health/live until it answers 200; fail (with the server's output) when the
    process exits or the deadline passes first."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"courtyard serve exited with {process.returncode}:\n{server_output(log)}"
                )
            try:
                if (await client.get("/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"courtyard serve did not answer within {STARTUP_DEADLINE:g}s:\n"
                    f"{server_output(log)}"
                )
            await asyncio.sleep(0.1)
