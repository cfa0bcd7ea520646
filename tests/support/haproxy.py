"""A real HAProxy balancing HTTP over `courtyard serve` instances, for tests.

    servers = {"one": 8001, "two": 8002}  # name -> port on 127.0.0.1
    with haproxy(servers, HealthCheck(inter=0.3, fall=2, rise=2)) as balancer:
        balancer.url  # http://127.0.0.1:<port>: round robin over the servers marked UP
        balancer.states()  # {"one": "UP", "two": "DOWN"}: what HAProxy's checks concluded
        balancer.wait_for("one", "DOWN", within=5)

A server is in rotation while `GET /health/ready` answers 200: `fall` failed checks in a
row (every `inter` seconds) take it out, `rise` passing ones put it back. HAProxy keeps its
defaults otherwise: connection failures are retried 3 times on the same server, and never
sent to another one (no `option redispatch`, no `retry-on` beyond the default), so a
request sent to an instance that went away is an error the client sees, not something the
balancer hides. The state is read on HAProxy's admin socket (`show stat`), as an operator
would. HAProxy comes from the OS packages (`apt-get install haproxy`); its log (one line
per request, with the status and the server) goes to a file, for failure messages.
"""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.served import free_port, stop_process

READY_PATH = "/health/ready"
_CONFIG = """
global
    maxconn 4000
    stats socket {root}/admin.sock mode 600 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check {check_timeout}ms

frontend web
    bind 127.0.0.1:{port}
    default_backend courtyard

backend courtyard
    balance roundrobin
    option httpchk GET {ready}
    http-check expect status 200
    default-server check inter {inter}ms fall {fall} rise {rise}
{servers}
"""


class HaproxyNotInstalled(RuntimeError):
    """haproxy is not on this machine."""


@dataclass(frozen=True)
class HealthCheck:
    """How HAProxy decides a server is in rotation: `GET /health/ready` every `inter`
    seconds, `fall` failures in a row to take it out, `rise` successes to put it back; a
    check not answered within `timeout` seconds fails."""

    inter: float = 0.3
    fall: int = 2
    rise: int = 2
    timeout: float = 2.0

    @property
    def out_within(self) -> float:
        """How long a server whose check starts failing at once (a draining instance's
        `/health/ready` answers 503 without running its checks) may stay in rotation: up
        to `inter` until the first failed check, `fall - 1` more `inter` apart, and one
        `inter` for the checks' own time."""
        return (self.fall + 1) * self.inter


def binary() -> str:
    """Where haproxy is; `HaproxyNotInstalled` (one line saying what to install) if not."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/bin")
    if found is None:
        raise HaproxyNotInstalled("haproxy was not found: install it (`apt-get install haproxy`)")
    return found


@dataclass
class Balancer:
    url: str
    root: Path  # its temporary folder: configuration, admin socket, log
    process: subprocess.Popen[str]

    @property
    def log_file(self) -> Path:
        return self.root / "haproxy.log"

    def log(self, last: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-last:]
        except OSError:
            return ""

    def command(self, line: str) -> str:
        """One command on the admin socket (e.g. `show stat`); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.settimeout(5)
            admin.connect(str(self.root / "admin.sock"))
            admin.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := admin.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def _servers(self) -> list[dict[str, str]]:
        """The backend's servers' rows of `show stat` (CSV, its header after "# ")."""
        table = self.command("show stat").lstrip("# ")
        return [
            row
            for row in csv.DictReader(table.splitlines())
            if row["pxname"] == "courtyard" and row["svname"] not in ("FRONTEND", "BACKEND")
        ]

    def states(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it: "UP", "DOWN", "UP 1/2" (failing, not out
        yet), "DOWN 1/2" (passing, not back yet), "MAINT"…"""
        return {row["svname"]: row["status"] for row in self._servers()}

    def answered(self) -> dict[str, int]:
        """How many HTTP responses each server has given through HAProxy so far (health
        checks not counted)."""
        classes = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
        return {row["svname"]: sum(int(row[c] or 0) for c in classes) for row in self._servers()}

    def set_state(self, server: str, state: str) -> None:
        """`ready`, `drain` or `maint` (out of rotation, health checks included) for
        `server`, on the admin socket."""
        answer = self.command(f"set server courtyard/{server} state {state}").strip()
        if answer:
            raise RuntimeError(f"haproxy refused `set server {server} state {state}`: {answer}")

    def wait_for(self, server: str, state: str, within: float) -> float:
        """Block until `server` is in `state` ("UP" or "DOWN" exactly); how long it took.
        AssertionError naming the last state seen after `within` seconds."""
        started = time.monotonic()
        while (seen := self.states().get(server)) != state:
            if self.process.poll() is not None:
                raise AssertionError(f"haproxy exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() - started > within:
                raise AssertionError(
                    f"HAProxy did not mark {server} {state} within {within:g}s (it is {seen})"
                )
            time.sleep(0.05)
        return time.monotonic() - started


def _wait_until_listening(port: int, balancer: Balancer) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if balancer.process.poll() is not None:
            raise RuntimeError(f"haproxy exited ({balancer.process.returncode}):\n{balancer.log()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"haproxy did not listen on {port} within 20 s:\n{balancer.log()}")


@contextmanager
def haproxy(servers: Mapping[str, int], check: HealthCheck) -> Iterator[Balancer]:
    """HAProxy on a free port of 127.0.0.1, round robin over `servers` (name -> port on
    127.0.0.1) with `check`; stopped and its folder removed however the block ends."""
    executable = binary()
    root = Path(tempfile.mkdtemp(prefix="courtyard-haproxy-"))
    port = free_port()
    lines = [f"    server {name} 127.0.0.1:{p}" for name, p in servers.items()]
    config = root / "haproxy.cfg"
    config.write_text(
        _CONFIG.format(
            root=root,
            port=port,
            ready=READY_PATH,
            inter=round(check.inter * 1000),
            fall=check.fall,
            rise=check.rise,
            check_timeout=round(check.timeout * 1000),
            servers="\n".join(lines),
        )
    )
    validated = subprocess.run(
        [executable, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if validated.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"haproxy refused its configuration:\n{validated.stderr}")
    with (root / "haproxy.log").open("w") as log:
        # -db: in the foreground, logging to our file; -Ws would expect systemd.
        process = subprocess.Popen(
            [executable, "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    balancer = Balancer(f"http://127.0.0.1:{port}", root, process)
    try:
        _wait_until_listening(port, balancer)
        yield balancer
    finally:
        stop_process(process, timeout=10)
        shutil.rmtree(root, ignore_errors=True)
