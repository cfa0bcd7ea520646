"""`make bench`: Courtyard, the reference and the floor under the same load, in one run.

    python -m bench.run [--quick] [--rounds N] [--output DIR] [--only …] [--apps …]

Each app serves on one uvicorn worker pinned to CPU 0, wrk loads it from CPU 1; every app
gets the same freshly seeded PostgreSQL database.

The apps are measured in alternating rounds. This machine's speed drifts by tens of
percent within minutes, so measuring one app's repetitions and then the next app's let a
slow phase land on one app (`/users/me` read 0.38x the floor in one run and 0.69x measured
alone the same day). Per scenario:

- The three servers start side by side (ports PORT, PORT + 1, PORT + 2, all on CPU 0) and
  each gets its warm-up once, then stays up; RSS is read after the warm-up. A server not
  under load sits idle: no requests, only its timers (a revoked-session reload every few
  seconds, uvicorn's tick) and its pooled connections held open.
- Then `rounds` rounds: in each, every app gets one measured repetition, in the order
  courtyard, reference, floor. Each round's ratios (Courtyard / reference, Courtyard /
  floor; for login, each repetition over its adjacent bare argon2 rate) come from that
  round's repetitions only, which lie within one round's time of each other, so a slow
  phase lands on all three apps or spoils one round, not one app.
- The report gives every ratio's median over the rounds and its spread (min-max,
  interquartile range, each round); the targets are judged on the medians, with the
  spread next to them. An app's requests/s and latencies are medians of its repetitions.

A fresh server and warm-up per app and round would also alternate, but every round would
pay three starts and warm-ups (some 20 s: eight minutes more on a full run) for nothing a
repetition needs: a server is warm after its warm-up and stays so. The order within a
round stays the same in every round, as the one-app-after-another runs had it.

Login: bare argon2 is measured on the app's CPU (the servers up but idle) before each
repetition and after the last, so in the interleaved sequence every repetition, whichever
app it is, sits between two measurements and is compared with their mean.

Full run: 5 rounds of 6 s per app after a 5 s warm-up: the same 30 s of load per app and
scenario as the 3 x 10 s of the one-app-after-another runs, and about a minute more in all
(13-15 minutes on an idle machine): refresh tokens are made 18 times instead of 12 (before
every warm-up and repetition), and login takes 16 bare argon2 measurements instead of 12.
`--quick`: 2 rounds of 2 s after 1 s, about 2.5 minutes. `--rounds N` changes the number
of rounds. Writes bench/results/ (or `--output DIR`); a subset (`--only`, `--apps`) is
printed instead.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import database
from bench.argon2_rate import hashes_per_second
from bench.config import APPS, LOGIN_LIMIT, PORT, SCENARIOS, SECRET_KEY, RunOptions, Scenario
from bench.load import LoadResult, run_wrk
from bench.report import LABELS, round_ratios, spread, write
from bench.servers import SERVER_PYTHON, rss_mib, running
from bench.startup import startup_times
from plugins.auth.settings import AuthSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_NAME = "courtyard_bench"


def app_env(
    server: str, scratch: Path, settings: AuthSettings, python: str | None
) -> dict[str, str]:
    """One environment for all three apps (each reads its own variables)."""
    return {
        **os.environ,
        SERVER_PYTHON: python or sys.executable,
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
    scenario: Scenario,
    apps: list[str],
    options: RunOptions,
    env: dict[str, str],
    ids: dict[str, str],
    scratch: Path,
    started: float,
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """`scenario` against fresh servers of `apps`, side by side: a warm-up each, then
    `options.rounds` rounds of one repetition per app. Returns a row per app and the bare
    argon2 samples in the order taken (none unless the scenario asks for them)."""
    url = env["BENCH_ASYNCPG_URL"]
    settings = AuthSettings()
    token = database.access_token(ids, scenario.auth, settings) if scenario.auth else None
    tokens_file = scratch / "refresh_tokens.txt"
    ports = {app: PORT + i for i, app in enumerate(apps)}

    def once(app: str, seconds: float) -> LoadResult:
        if scenario.refresh_tokens:
            asyncio.run(
                database.refresh_tokens(url, ids["user"], options.refresh_pool, tokens_file)
            )
        if scenario.name == "uploads_presign":
            asyncio.run(database.clear_uploads(url))
        return run_wrk(
            f"http://127.0.0.1:{ports[app]}",
            scenario,
            seconds,
            access_token=token,
            tokens_file=tokens_file if scenario.refresh_tokens else None,
        )

    def bare() -> None:
        # With the servers up but idle (wrk not running): the bare argon2 rate of this moment.
        if scenario.bare_argon2:
            samples.append(hashes_per_second(options.argon2_seconds))

    samples: list[float] = []  # bare argon2 before each repetition, then after the last
    rss: dict[str, float] = {}
    runs: dict[str, list[dict[str, Any]]] = {app: [] for app in apps}
    taken: list[dict[str, Any]] = []  # every app's repetitions in the order run
    with ExitStack() as servers:
        for app in apps:
            pid = servers.enter_context(running(app, env, scratch / f"{app}.log", ports[app]))
            once(app, options.warmup)
            rss[app] = rss_mib(pid)
        for number in range(options.rounds):
            for app in apps:
                bare()
                at = round(time.perf_counter() - started, 1)
                run = {"round": number, "at_s": at, **asdict(once(app, options.duration))}
                runs[app].append(run)
                taken.append(run)
            log_round(scenario.name, number, options.rounds, runs)
        bare()
    if samples:
        # Each repetition against the mean of its two neighbours (before and after): in the
        # interleaved sequence one app's "after" is the next repetition's "before".
        for i, run in enumerate(taken):
            run["bare_argon2_before"], run["bare_argon2_after"] = samples[i], samples[i + 1]
            run["bare_argon2"] = (samples[i] + samples[i + 1]) / 2
            run["over_bare_argon2"] = run["rps"] / run["bare_argon2"]
    by_app: dict[str, dict[str, Any]] = {}
    for app in apps:
        rows = runs[app]
        by_app[app] = {
            "rps": statistics.median(r["rps"] for r in rows),
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "rss_mib": rss[app],
            "runs": rows,
        }
        if samples:
            by_app[app]["over_bare_argon2"] = statistics.median(r["over_bare_argon2"] for r in rows)
    return by_app, samples


def log_round(name: str, number: int, rounds: int, runs: dict[str, list[dict[str, Any]]]) -> None:
    rates = ", ".join(f"{app} {rows[number]['rps']:.0f}" for app, rows in runs.items())
    log(f"{name} round {number + 1}/{rounds}: {rates} req/s")


def log_scenario(by_app: dict[str, dict[str, Any]], samples: list[float]) -> None:
    for app, row in by_app.items():
        log(f"  {app}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.1f} ms, {row['errors']} errors")
    if samples:
        rates = ", ".join(f"{b:.1f}" for b in samples)
        log(f"  bare argon2 {rates}/s")
    for key, values in round_ratios(by_app).items():
        s = spread(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        log(f"  {LABELS[key]} {s['median']:.2f}x (rounds {s['min']:.2f}-{s['max']:.2f}: {each})")


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
    parser.add_argument("--quick", action="store_true", help="a 2-3 minute smoke run")
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432"),
        help="PostgreSQL user@host:port (a database `courtyard_bench` is (re)created there)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument("--apps", default="", help="comma-separated apps (default: all three)")
    parser.add_argument(
        "--rounds", type=int, help="rounds per scenario (default: 5, with --quick 2)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where a full run's results go"
    )
    parser.add_argument(
        "--server-python",
        help="the Python the apps are served with (default: this one; `make bench` gives a "
        "venv with Courtyard's own dependencies only)",
    )
    args = parser.parse_args(argv)
    check_tools()
    options = RunOptions.of(args.quick)
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        options = dataclasses.replace(options, rounds=args.rounds)
    settings = AuthSettings()
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    apps = [a for a in APPS if not args.apps or a in args.apps.split(",")]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        env = app_env(args.server, scratch, settings, args.server_python)
        log(f"database {DB_NAME}: create, migrate, seed")
        asyncio.run(database.recreate(args.server, DB_NAME))
        database.migrate(Path(sys.executable).parent / "courtyard", env)
        ids = asyncio.run(database.seed(env["BENCH_ASYNCPG_URL"], settings))
        results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": options.quick,
            "order": apps,  # within every round
            "rounds": options.rounds,
            "repetitions": options.rounds,  # per app and scenario: one per round
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "cpus": os.cpu_count(),
            "scenarios": {},
        }
        log("startup times")
        results["startup"] = startup_times(env, options.startup_runs)
        # The rate the login target compares with: every measurement between login runs.
        samples: list[float] = []
        for scenario in scenarios:
            log(f"{scenario.name}: {', '.join(apps)}, {options.rounds} rounds")
            by_app, taken = measure(scenario, apps, options, env, ids, scratch, began)
            results["scenarios"][scenario.name] = by_app
            log_scenario(by_app, taken)
            samples += taken
        if samples:
            results["bare_argon2_samples"] = samples
            results["argon2_hashes_per_s"] = statistics.median(samples)
    results["elapsed_s"] = round(time.perf_counter() - began, 1)
    log(f"took {results['elapsed_s'] / 60:.1f} min")
    if len(scenarios) == len(SCENARIOS) and len(apps) == len(APPS):
        print(write(results, args.output))
    else:
        print(results)


if __name__ == "__main__":
    main()
