"""`make bench`: Courtyard, the reference and the floor under the same load, in one run.

    python -m bench.run [--quick]

Each app serves on one uvicorn worker pinned to CPU 0, wrk loads it from CPU 1; every app
gets the same freshly seeded PostgreSQL database. Per scenario and app: a fresh server,
warm-up, then the measured repetitions (medians). For login, also bare argon2 on the app's
CPU right before each repetition and after the last (the server idle meanwhile): the rate
drifts over minutes here, so each repetition is compared with the mean of its two
neighbours. Writes bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import database
from bench.argon2_rate import hashes_per_second
from bench.config import APPS, LOGIN_LIMIT, PORT, SCENARIOS, SECRET_KEY, RunOptions, Scenario
from bench.load import LoadResult, run_wrk
from bench.report import write
from bench.servers import rss_mib, running
from bench.startup import startup_times
from plugins.auth.settings import AuthSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_NAME = "courtyard_bench"


def app_env(server: str, scratch: Path, settings: AuthSettings) -> dict[str, str]:
    """One environment for all three apps (each reads its own variables)."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COURTYARD_ENV": "production",
        "COURTYARD_DATABASE_URL": database.sqlalchemy_url(server, DB_NAME),
        "COURTYARD_SECRET_KEY": SECRET_KEY,
        "COURTYARD_LOG_LEVEL": "WARNING",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_ACCOUNT": LOGIN_LIMIT,
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_IP": LOGIN_LIMIT,
        "COURTYARD_UPLOAD__LOCAL_ROOT": str(scratch / "uploads"),
        "COURTYARD_UPLOAD__QUOTA_FILES": str(10**9),
        "COURTYARD_UPLOAD__QUOTA_BYTES": str(10**15),
        "BENCH_DATABASE_URL": database.sqlalchemy_url(server, DB_NAME),
        "BENCH_ASYNCPG_URL": database.asyncpg_url(server, DB_NAME),
        "BENCH_SECRET_KEY": SECRET_KEY,
        "BENCH_ARGON2_TIME_COST": str(settings.argon2_time_cost),
        "BENCH_ARGON2_MEMORY_COST": str(settings.argon2_memory_cost),
        "BENCH_ARGON2_PARALLELISM": str(settings.argon2_parallelism),
        "BENCH_LOGIN_LIMIT": LOGIN_LIMIT,
    }


def measure(
    app: str,
    scenario: Scenario,
    options: RunOptions,
    env: dict[str, str],
    ids: dict[str, str],
    scratch: Path,
) -> dict[str, Any]:
    """Warm-up and repetitions of `scenario` against a fresh server of `app`."""
    url = env["BENCH_ASYNCPG_URL"]
    settings = AuthSettings()
    token = database.access_token(ids, scenario.auth, settings) if scenario.auth else None
    tokens_file = scratch / "refresh_tokens.txt"

    def once(seconds: float) -> LoadResult:
        if scenario.refresh_tokens:
            asyncio.run(
                database.refresh_tokens(url, ids["user"], options.refresh_pool, tokens_file)
            )
        if scenario.name == "uploads_presign":
            asyncio.run(database.clear_uploads(url))
        return run_wrk(
            f"http://127.0.0.1:{PORT}",
            scenario,
            seconds,
            access_token=token,
            tokens_file=tokens_file if scenario.refresh_tokens else None,
        )

    def bare() -> list[float]:
        # With the server up but idle (wrk not running): the bare argon2 rate of this moment.
        return [hashes_per_second(options.argon2_seconds)] if scenario.bare_argon2 else []

    samples: list[float] = []  # bare argon2 before each repetition, then after the last
    runs: list[LoadResult] = []
    with running(app, env, scratch / f"{app}.log") as pid:
        once(options.warmup)
        rss = rss_mib(pid)
        for _ in range(options.repetitions):
            samples += bare()
            runs.append(once(options.duration))
        samples += bare()
    row: dict[str, Any] = {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "errors": sum(r.errors for r in runs),
        "rss_mib": rss,
        "runs": [asdict(r) for r in runs],
    }
    if samples:
        # Each repetition against the mean of its two neighbours (before and after).
        for i, run in enumerate(row["runs"]):
            run["bare_argon2"] = (samples[i] + samples[i + 1]) / 2
            run["over_bare_argon2"] = run["rps"] / run["bare_argon2"]
        row["bare_argon2_samples"] = samples
        row["over_bare_argon2"] = statistics.median(r["over_bare_argon2"] for r in row["runs"])
    return row


def log(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def check_tools() -> None:
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: `{tool}` is not installed (make bench installs wrk with apt-get)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs 2 CPUs (one for the app, one for wrk)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute smoke run")
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432"),
        help="PostgreSQL user@host:port (a database `courtyard_bench` is (re)created there)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument("--apps", default="", help="comma-separated apps (default: all three)")
    args = parser.parse_args(argv)
    check_tools()
    options = RunOptions.of(args.quick)
    settings = AuthSettings()
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    apps = [a for a in APPS if not args.apps or a in args.apps.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        env = app_env(args.server, scratch, settings)
        log(f"database {DB_NAME}: create, migrate, seed")
        asyncio.run(database.recreate(args.server, DB_NAME))
        database.migrate(Path(sys.executable).parent / "courtyard", env)
        ids = asyncio.run(database.seed(env["BENCH_ASYNCPG_URL"], settings))
        results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": options.quick,
            "repetitions": options.repetitions,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "cpus": os.cpu_count(),
            "scenarios": {},
        }
        log("startup times")
        results["startup"] = startup_times(env, options.startup_runs)
        for scenario in scenarios:
            results["scenarios"][scenario.name] = {}
            for app in apps:
                log(f"{scenario.name}: {app}")
                row = measure(app, scenario, options, env, ids, scratch)
                results["scenarios"][scenario.name][app] = row
                log(f"  {row['rps']:.0f} req/s, p99 {row['p99_ms']:.1f} ms, {row['errors']} errors")
                if "over_bare_argon2" in row:
                    rates = ", ".join(f"{b:.1f}" for b in row["bare_argon2_samples"])
                    log(f"  bare argon2 {rates}/s; {row['over_bare_argon2']:.2f}x of it")
        # The rate the login target compares with: every measurement next to a login run.
        samples = [
            b
            for by_app in results["scenarios"].values()
            for row in by_app.values()
            for b in row.get("bare_argon2_samples", [])
        ]
        if samples:
            results["argon2_hashes_per_s"] = statistics.median(samples)
    if len(scenarios) == len(SCENARIOS) and len(apps) == len(APPS):
        print(write(results, RESULTS))
    else:
        print(results)


if __name__ == "__main__":
    main()
