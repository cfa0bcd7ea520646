"""Start an app under uvicorn (one worker, pinned to one CPU), wait for it, read its RSS.

The servers run on the Python of `SERVER_PYTHON` in their environment when it is set:
`make bench` sets it to a virtual environment holding Courtyard's own dependencies only, as
a deployment installs them. In the development one, libraries the tests bring (Pygments,
Werkzeug, cryptography, the OpenTelemetry SDK...) are imported by libraries that take them
up whenever they are installed, and would count in every app's memory.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench.config import APP_CPU, PORT

SERVER_PYTHON = "BENCH_SERVER_PYTHON"

TARGETS = {
    "courtyard": ["core.app:create_app", "--factory"],
    "reference": ["bench.reference.app:app"],
    "floor": ["bench.floor.app:app"],
    # `bench.threads --hash-stubbed` only: Courtyard without argon2's cost.
    "courtyard-stubbed-hash": ["bench.stubbed_hash:create_app", "--factory"],
}


def command(app: str, env: Mapping[str, str], port: int = PORT) -> list[str]:
    """The same uvicorn options for every app: uvloop, httptools, no access log."""
    python = env.get(SERVER_PYTHON) or sys.executable
    return [
        "taskset", "-c", APP_CPU, python, "-m", "uvicorn", *TARGETS[app],
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def wait_until_live(port: int, process: subprocess.Popen[bytes], limit: float = 60.0) -> float:
    """Seconds until `/health/live` first answers 200 (polled every 5 ms)."""
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}/health/live"
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.005)
    raise RuntimeError(f"no 200 from {url} within {limit} s")


def rss_mib(pid: int) -> float:
    """Resident set size of `pid`, MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running(app: str, env: Mapping[str, str], log: Path, port: int = PORT) -> Iterator[int]:
    """Serve `app` (its output to `log`); yields the server's pid once it answers.
    Stopped (SIGINT) on exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command(app, env, port), env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_until_live(port, process)
        yield process.pid
    except Exception:
        process.kill()
        process.wait()
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def timed_start(app: str, env: Mapping[str, str], port: int = PORT) -> float:
    """Seconds from spawning `app` to its first 200 on `/health/live`."""
    process = subprocess.Popen(
        command(app, env, port), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        return wait_until_live(port, process)
    except Exception:
        process.kill()
        _, err = process.communicate()
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
