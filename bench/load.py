"""Load from wrk, pinned to its own CPU; one run's requests/s, latency and errors."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.config import LOAD_CPU, Scenario

SCRIPT = Path(__file__).resolve().parent / "lua" / "scenario.lua"


@dataclass(frozen=True, slots=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    requests: int


def run_wrk(
    url: str,
    scenario: Scenario,
    seconds: float,
    *,
    access_token: str | None = None,
    tokens_file: Path | None = None,
) -> LoadResult:
    """One wrk run of `scenario` against `url` for `seconds` (one thread)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "summary.json"
        env = {
            **os.environ,
            "BENCH_METHOD": scenario.method,
            "BENCH_BODY": scenario.body or "",
            "BENCH_AUTH": access_token or "",
            "BENCH_TOKENS": str(tokens_file or ""),
            "BENCH_OUT": str(out),
        }
        command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{scenario.connections}"]
        command += [f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(SCRIPT)]
        subprocess.run(
            [*command, url + scenario.path], env=env, check=True, capture_output=True, text=True
        )
        summary = json.loads(out.read_text())
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        requests=summary["requests"],
    )
