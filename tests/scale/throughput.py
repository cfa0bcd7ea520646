"""Requests per second through HAProxy with 1, 2 and 3 instances: a report, not a test.

    make scale-report        # or: .venv/bin/python -m tests.scale.throughput [--seconds 8]

Starts the scale suite's deployment (tests/scale/topology.py: three `courtyard serve`
instances behind HAProxy, pgbouncer in transaction mode, a streaming replica, Redis), then
for 1, 2 and 3 instances in rotation (the others put in maintenance on HAProxy's admin
socket) runs wrk (bench/lua/scenario.lua) against two authenticated reads:

- `GET /api/v1/users/me`: the account check reads the primary; nothing else;
- `GET /api/v1/users/{own id}`: the same check, then the user read, which may go to the
  replica (the caller has written nothing lately).

For each run it prints requests/s, latency, errors, the read transactions each PostgreSQL
server ran per second (`pg_stat_database.xact_rollback`: every read session ends with a
rollback; read after PostgreSQL's 10 s idle flush of backend statistics; the health
checks' few included) and the replica's share of them, and the CPU each component used
per second of load: on a machine with few CPUs that shows where the limit is. Other work
running on the machine meanwhile shows as "other" and lowers the figures, which depend
on the machine anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.load import SCRIPT
from tests.scale.clients import AUTH, ME, PASSWORD, USERS
from tests.scale.cpu import cpu_seconds
from tests.scale.requirements import missing
from tests.scale.topology import Topology, topology
from tests.support.pg_cluster import PgCluster

STATS_FLUSH = 11.0  # seconds: an idle PostgreSQL backend flushes its statistics within 10 s
CONNECTIONS = 24  # wrk's connections (one thread)
WARM_UP = 2.0  # seconds of load before each measurement
# The production defaults where the tests shorten them; no access log.
SETTINGS = {"COURTYARD_AUTH__REVOCATION_CHECK_INTERVAL": "5", "COURTYARD_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Run:
    instances: int
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    primary_reads: float  # read transactions per second on the primary
    replica_reads: float
    cpu: dict[str, float]  # CPU seconds per second of load, by component

    @property
    def replica_share(self) -> float:
        total = self.primary_reads + self.replica_reads
        return self.replica_reads / total if total else 0.0


@contextmanager
def loading(url: str, token: str, seconds: float) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """wrk running against `url` for `seconds`; (its process, where its summary will be)."""
    with tempfile.TemporaryDirectory() as scratch:
        summary = Path(scratch) / "summary.json"
        env = {**os.environ, "BENCH_METHOD": "GET", "BENCH_AUTH": token, "BENCH_OUT": str(summary)}
        command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
        command += ["--timeout", "10s", "-s", str(SCRIPT), url]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            yield process, summary
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def reads(server: PgCluster) -> int:
    """Read transactions on `server`'s app database so far: those rolled back, as every
    read session ends (the loads here write nothing). Commits are left out: behind
    pgbouncer they also count the `SET client_encoding` it sends, outside any transaction,
    each time it hands a server connection to a client."""
    return int(server.sql("SELECT xact_rollback FROM pg_stat_database WHERE datname = 'postgres'"))


def pgbouncer_pids(port: int) -> list[int]:
    """The pgbouncer listening on `port` (found by its configuration file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pgbouncer") and len(argv) > 1:
            try:
                config = Path(argv[1].decode()).read_text()
            except (OSError, UnicodeDecodeError):
                continue
            if f"listen_port = {port}\n" in config:
                found.append(int(entry.name))
    return found


def components(scale: Topology, load: subprocess.Popen[str]) -> dict[str, list[int]]:
    bouncer_port = int(scale.database_url.rsplit(":", 1)[1].split("/")[0])
    postgres = [scale.primary.postmaster_pid(), scale.replica.postmaster_pid()]
    return {
        "instances": [i.process.pid for i in scale.instances if i.process is not None],
        "haproxy": [scale.balancer.process.pid],
        "pgbouncer": pgbouncer_pids(bouncer_port),
        "postgres": [pid for pid in postgres if pid is not None],
        "wrk": [load.pid],
    }


def measure(scale: Topology, count: int, endpoint: str, token: str, seconds: float) -> Run:
    url = scale.url + endpoint
    with loading(url, token, WARM_UP) as (warm, _):
        warm.wait()
    time.sleep(STATS_FLUSH)
    before = reads(scale.primary), reads(scale.replica)
    with loading(url, token, seconds) as (load, summary_file):
        cpu_before = cpu_seconds(components(scale, load))
        started = time.monotonic()
        time.sleep(seconds - 0.5)  # read the CPU times while wrk and its load still run
        cpu_after = cpu_seconds(components(scale, load))
        cpu_took = time.monotonic() - started
        _, errors = load.communicate()
        if load.returncode != 0:
            raise RuntimeError(f"wrk failed ({load.returncode}): {errors}")
        summary = json.loads(summary_file.read_text())
    time.sleep(STATS_FLUSH)
    after = reads(scale.primary), reads(scale.replica)
    took = summary["duration_us"] / 1e6
    failed = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        instances=count,
        endpoint=endpoint,
        rps=summary["requests"] / took,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=failed,
        primary_reads=(after[0] - before[0]) / took,
        replica_reads=(after[1] - before[1]) / took,
        cpu={k: (cpu_after[k] - cpu_before[k]) / cpu_took for k in cpu_after},
    )


def in_rotation(scale: Topology, count: int) -> None:
    """The first `count` instances in HAProxy's rotation, the others in maintenance."""
    for n, instance in enumerate(scale.instances):
        scale.balancer.set_state(instance.name, "ready" if n < count else "maint")
    for instance in scale.instances[:count]:
        scale.balancer.wait_for(instance.name, "UP", within=10)


def table(runs: list[Run]) -> str:
    head = (
        "| instances | endpoint | req/s | p50 ms | p99 ms | errors | primary reads/s "
        "| replica reads/s | replica share |"
    )
    lines = [head, "|---" * 9 + "|"]
    for r in runs:
        lines.append(
            f"| {r.instances} | {r.endpoint} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.errors} | {r.primary_reads:.0f} | {r.replica_reads:.0f} "
            f"| {100 * r.replica_share:.0f}% |"
        )
    names = ["instances", "haproxy", "pgbouncer", "postgres", "wrk"]
    lines += [
        "",
        f"CPU seconds per second of load ({os.cpu_count()} CPUs; other: the machine's busy "
        "time not spent by the deployment or wrk, e.g. other work running meanwhile):",
        "",
        "| instances | endpoint | " + " | ".join(names) + " | other | machine |",
        "|---" * 9 + "|",
    ]
    for r in runs:
        cells = " | ".join(f"{r.cpu[n]:.2f}" for n in names)
        other = r.cpu["machine"] - sum(r.cpu[n] for n in names)
        lines.append(
            f"| {r.instances} | {r.endpoint} | {cells} | {other:.2f} | {r.cpu['machine']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each measurement's length")
    args = parser.parse_args()
    problems = missing() + ([] if shutil.which("wrk") else ["wrk (`apt-get install wrk`)"])
    if problems:
        print("the throughput report needs: " + "; ".join(problems), file=sys.stderr)
        return 2
    print(f"{os.cpu_count()} CPUs; starting the deployment…", file=sys.stderr)
    runs: list[Run] = []
    with topology(3, SETTINGS) as scale:
        with httpx.Client(base_url=scale.url, timeout=30) as client:
            signed_up = client.post(
                f"{AUTH}/signup",
                json={"email": "load@example.com", "password": PASSWORD, "name": "Load"},
            )
        signed_up.raise_for_status()
        token = signed_up.json()["access_token"]
        user_id = signed_up.json()["user"]["id"]
        for count in (1, 2, 3):
            in_rotation(scale, count)
            for endpoint in (ME, f"{USERS}/{user_id}"):
                print(f"{count} instance(s), GET {endpoint}…", file=sys.stderr)
                runs.append(measure(scale, count, endpoint, token, args.seconds))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
