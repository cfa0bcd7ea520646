"""The login ceiling: bare argon2id hashes per second at the configured parameters, in one
thread on the app's CPU (what one pinned worker can do at most)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.config import APP_CPU


def hashes_per_second(seconds: float) -> float:
    """Run `measure` in a process pinned to the app's CPU; its hashes per second."""
    code = f"from bench.argon2_rate import measure; print(measure({seconds}))"
    output = subprocess.run(
        ["taskset", "-c", APP_CPU, sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output.strip())


def measure(seconds: float) -> float:
    from bench.database import argon2_hasher
    from plugins.auth.settings import AuthSettings

    hasher = argon2_hasher(AuthSettings())
    hasher.hash("warm up")
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        hasher.hash("bench password 0123")
        count += 1
    return count / elapsed
