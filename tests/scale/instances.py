"""`courtyard serve` instances on fixed ports, which a test stops and starts again.

A load balancer knows its servers by address, so an instance restarted in a rolling
restart must come back on the port it had (tests/support/served.py picks a new free port
for every server, which suits tests without a balancer). The process is configured by its
environment alone, as a deployment's is: no COURTYARD_* variable of the test process
leaks in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.served import SERVE, STARTUP_DEADLINE, free_port, wait_or_kill

STOP_DEADLINE = 10.0  # seconds a stopped instance may take to exit after its drain


@dataclass
class Instance:
    """One `courtyard serve` process on 127.0.0.1:`port`, its output appended to `log`."""

    name: str
    environment: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    _interrupted: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def output(self, last: int | None = 4000) -> str:
        """The last `last` characters of the log (all of it for None)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text if last is None else text[-last:]

    def start(self) -> None:
        """Start the process (without waiting for it to serve: `wait_live`)."""
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("COURTYARD_", "FORWARDED_ALLOW_IPS")) and key != "PYTHONPATH"
        }
        environ.update(self.environment)
        self._interrupted = False
        with self.log.open("a") as output:
            output.write(f"--- {self.name}: starting on port {self.port}\n")
            output.flush()
            self.process = subprocess.Popen(
                [*SERVE, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.cwd,
                env=environ,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def wait_live(self) -> None:
        """Block until `/health/live` answers 200; AssertionError (with the instance's
        output) when the process exits or `STARTUP_DEADLINE` passes first."""
        process = self._running()
        deadline = time.monotonic() + STARTUP_DEADLINE
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited with {process.returncode}:\n{self.output()}"
                    )
                try:
                    if client.get("/health/live").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.name} did not answer within {STARTUP_DEADLINE:g}s:\n{self.output()}"
                    )
                time.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM, as a platform stopping the instance sends it (the drain starts)."""
        self._running().send_signal(signal.SIGTERM)

    def wait_exit(self, within: float) -> int:
        """Block until the process exits; its exit code. AssertionError after `within`."""
        process = self._running()
        try:
            code = process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs {within:g}s after SIGTERM:\n{self.output()}"
            ) from None
        self.process = None
        return code

    def interrupt(self) -> None:
        """Ask the process to stop without a drain (SIGINT: what Ctrl+C sends, and what
        ends a drain under way); `stop` then waits for it."""
        if self.process is not None and self.process.poll() is None and not self._interrupted:
            self.process.send_signal(signal.SIGINT)
            self._interrupted = True

    def stop(self) -> None:
        """End the process whatever its state: `interrupt`, then wait, killing it if it
        will not stop."""
        self.interrupt()
        process, self.process = self.process, None
        self._interrupted = False
        if process is not None:
            wait_or_kill(process, STOP_DEADLINE)

    def _running(self) -> subprocess.Popen[str]:
        if self.process is None:
            raise AssertionError(f"{self.name} is not running")
        return self.process


def stop_all(instances: list[Instance]) -> None:
    """Stop every instance, side by side (all interrupted before waiting for any)."""
    for instance in instances:
        instance.interrupt()
    for instance in instances:
        instance.stop()
