"""Where a served app's CPU goes, per request and per thread, under one scenario's load.

    python -m bench.threads courtyard auth_login [--seconds 10]

Serves the app as `make bench` does (uvicorn pinned to CPU 0, wrk on CPU 1, the bench
database as `make bench` left it) and reads each thread's CPU time and context switches
from `/proc` before and after a run: per request, the event loop's CPU (user and system)
and how often it woke up (voluntary switches), and the argon2 thread's CPU and how often it
was preempted. That is how login's cost besides the hash was found to follow the event
loop's wake-ups: each one finds the caches emptied by the hash. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.config import PORT, SCENARIOS
from bench.load import run_wrk
from bench.run import app_env
from bench.servers import running
from plugins.auth.settings import AuthSettings

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    name: str
    user_s: float
    system_s: float
    voluntary: int  # switches away while waiting (a wake-up follows each)
    preempted: int  # involuntary switches


def threads(pid: int) -> dict[str, ThreadTimes]:
    """Every thread of `pid` by id, with its counters so far."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        switches = {}
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.endswith("ctxt_switches"):
                switches[key] = int(value)
        found[tid] = ThreadTimes(
            name,
            int(fields[11]) / TICK,
            int(fields[12]) / TICK,
            switches.get("voluntary_ctxt_switches", 0),
            switches.get("nonvoluntary_ctxt_switches", 0),
        )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("courtyard", "reference", "floor"))
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--server", default=os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432")
    )
    args = parser.parse_args(argv)
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    if scenario.auth or scenario.refresh_tokens:
        parser.error("only scenarios without tokens to prepare (health_live, auth_login)")
    url = f"http://127.0.0.1:{PORT}"
    with tempfile.TemporaryDirectory() as folder:
        env = app_env(args.server, Path(folder), AuthSettings())
        with running(args.app, env, Path(folder) / "server.log") as pid:
            run_wrk(url, scenario, 3.0)  # warm-up
            before = threads(pid)
            result = run_wrk(url, scenario, args.seconds)
            after = threads(pid)
    count = max(result.requests, 1)
    print(f"{args.app} {scenario.name}: {result.rps:.1f} req/s, {result.requests} requests")
    print("thread            user ms  sys ms  wake-ups  preempted   (per request)")
    for tid, now in after.items():
        then = before.get(tid)
        if then is None:
            continue
        user, system = now.user_s - then.user_s, now.system_s - then.system_s
        woke, preempted = now.voluntary - then.voluntary, now.preempted - then.preempted
        if user + system == 0 and woke + preempted == 0:
            continue
        print(
            f"{now.name[:16]:16} {user / count * 1e3:8.2f} {system / count * 1e3:7.2f} "
            f"{woke / count:9.1f} {preempted / count:10.1f}"
        )


if __name__ == "__main__":
    main()
