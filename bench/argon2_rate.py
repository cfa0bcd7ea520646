"""The login ceiling: bare argon2id verifications per second at the configured parameters,
in one thread on the app's CPU (what one pinned worker can do at most).

`bench.run` measures it right before each login repetition and once after the last, with
the apps' servers up but idle, because on a shared virtual machine this memory-bound rate
(19 MiB per hash) drifts over minutes: 40-60 per s at different times here.

Verify, not hash: login runs `PasswordHasher.verify(stored_hash, password)`, so the loop
does the same. Both are one argon2id computation at the same parameters (verify adds
parsing the PHC string and a constant-time compare, hash a random salt and the encoding),
and measured back to back, pinned with `taskset -c 0`, 3 rounds of 4 s each, they cost the
same within noise: hash 51.8 / 46.6 / 46.5 per s, verify 52.2 / 48.0 / 43.9 per s
(verify/hash 1.01, 1.03, 0.94; the drift between rounds is larger than the difference).
So the switch does not move the ceiling; it only makes the loop do exactly what login does.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.config import APP_CPU


def hashes_per_second(seconds: float) -> float:
    """Run `measure` in a process pinned to the app's CPU; its verifications per second."""
    code = f"from bench.argon2_rate import measure; print(measure({seconds}))"
    output = subprocess.run(
        ["taskset", "-c", APP_CPU, sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output.strip())


def measure(seconds: float) -> float:
    """Verifications per second of the bench password against its stored hash, for
    `seconds` (after one hash, which also warms the allocator up)."""
    from bench.config import PASSWORD
    from bench.database import argon2_hasher
    from plugins.auth.settings import AuthSettings

    hasher = argon2_hasher(AuthSettings())
    stored = hasher.hash(PASSWORD)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        hasher.verify(stored, PASSWORD)
        count += 1
    return count / elapsed
