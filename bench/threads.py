"""Where a served app's CPU goes, per request and per thread, under one scenario's load.

    python -m bench.threads courtyard auth_login [--seconds 10] [--hash-stubbed]

Serves the app as `make bench` does (uvicorn pinned to CPU 0, wrk on CPU 1, the bench
database as `make bench` left it) and reads each thread's counters from `/proc` before and
after a run. Per request: each thread's time on the CPU (from `schedstat`, in nanoseconds,
not sampled at clock ticks), its user and system split (tick-sampled), how long it waited
for the CPU while runnable, how often it went to sleep (voluntary switches: the event
loop's wake-ups) and how often it was preempted. `--hash-stubbed` serves Courtyard with
argon2 replaced by an immediate answer (`bench.stubbed_hash`): the same requests without
the hash, so the event loop's cost can be compared with and without 19 MiB of argon2
memory going through the caches between its wake-ups. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import stubbed_hash
from bench.config import PORT, SCENARIOS
from bench.load import run_wrk
from bench.run import app_env
from bench.servers import running
from plugins.auth.settings import AuthSettings

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    name: str
    on_cpu_ns: int
    waited_ns: int  # runnable, waiting for the CPU
    user_s: float
    system_s: float
    voluntary: int  # switches away while waiting (a wake-up follows each)
    preempted: int  # involuntary switches


def threads(pid: int) -> dict[str, ThreadTimes]:
    """Every thread of `pid` by id, with its counters so far."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        on_cpu, waited, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if tid == str(pid):  # the main thread runs uvicorn's event loop
            name = "event loop"
        fields = stat[stat.rindex(")") + 2 :].split()
        switches = {}
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.endswith("ctxt_switches"):
                switches[key] = int(value)
        found[tid] = ThreadTimes(
            name,
            int(on_cpu),
            int(waited),
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
    stubbed_hash.add_option(parser)
    parser.add_argument(
        "--server", default=os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432")
    )
    args = parser.parse_args(argv)
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    if scenario.auth or scenario.refresh_tokens:
        parser.error("only scenarios without tokens to prepare (health_live, auth_login)")
    stubbed_hash.check_option(parser, args)
    served = "courtyard-stubbed-hash" if args.hash_stubbed else args.app
    url = f"http://127.0.0.1:{PORT}"
    with tempfile.TemporaryDirectory() as folder:
        env = app_env(args.server, Path(folder), AuthSettings())
        with running(served, env, Path(folder) / "server.log") as pid:
            run_wrk(url, scenario, 3.0)  # warm-up
            before = threads(pid)
            result = run_wrk(url, scenario, args.seconds)
            after = threads(pid)
    count = max(result.requests, 1)
    print(f"{served} {scenario.name}: {result.rps:.1f} req/s, {result.requests} requests")
    print(
        "thread           on-CPU ms  user ms  sys ms  waited ms  wake-ups  preempted"
        "   (per request)"
    )
    for tid, now in after.items():
        then = before.get(tid)
        if then is None:
            continue
        on_cpu = (now.on_cpu_ns - then.on_cpu_ns) / 1e6 / count
        if on_cpu < 0.005:
            continue
        print(
            f"{now.name[:16]:16} {on_cpu:9.2f} "
            f"{(now.user_s - then.user_s) / count * 1e3:8.2f} "
            f"{(now.system_s - then.system_s) / count * 1e3:7.2f} "
            f"{(now.waited_ns - then.waited_ns) / 1e6 / count:10.2f} "
            f"{(now.voluntary - then.voluntary) / count:9.1f} "
            f"{(now.preempted - then.preempted) / count:10.1f}"
        )


if __name__ == "__main__":
    main()
