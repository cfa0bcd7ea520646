"""CPU instructions per request, counted by valgrind's callgrind: a figure that does not
drift with the machine's speed, for before/after comparisons of one change.

    python -m bench.instructions courtyard auth_login [--hash-stubbed]

Runs `bench.inprocess` (one request at a time, no server) under callgrind twice, with a
short and a longer measured run, and divides the difference in instructions by the
difference in requests, so imports, startup and warm-up cancel out. The two runs take
about three minutes (callgrind is some fifty times slower than the CPU). Needs valgrind (from
the OS packages: `apt-get install valgrind`). Not part of `make bench`.

Fewer instructions is not the same as less time: under login's load the event loop's
time goes mostly to cold caches after each hash, which instructions do not show (see
docs/performance.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import stubbed_hash
from bench.config import SCENARIOS

# bench.inprocess measures a tenth of --requests for login (argon2-bound) and all of them
# for the other scenarios; the statuses it prints say how many it made.
SHORT, LONG = 1000, 3000
_COLLECTED = re.compile(r"Collected : (\d+)")
_STATUSES = re.compile(r"\{(\d+: \d+(?:, \d+: \d+)*)\}")


def counted(app: str, scenario: str, requests: int, stubbed: bool, folder: Path) -> tuple[int, int]:
    """Instructions of one `bench.inprocess` run under callgrind, and its measured requests."""
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.%p",
        sys.executable, "-m", "bench.inprocess", app, scenario,
        "--requests", str(requests), "--concurrency", "1",
    ]  # fmt: skip
    if stubbed:
        command.append("--hash-stubbed")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    collected = _COLLECTED.findall(run.stderr)
    statuses = _STATUSES.findall(run.stdout)
    if run.returncode != 0 or not collected or not statuses:
        sys.stderr.write(run.stdout[-2000:] + run.stderr[-2000:])
        raise SystemExit(f"bench.inprocess under callgrind failed (exit {run.returncode})")
    answered = dict(pair.split(": ") for pair in statuses[-1].split(", "))
    if any(not status.startswith("2") for status in answered):
        raise SystemExit(f"{app} {scenario} answered {answered}: only 2xx requests count")
    return int(collected[-1]), sum(int(count) for count in answered.values())


def main(argv: list[str] | None = None) -> None:
    """Print one app's instructions per request for one scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("courtyard", "reference", "floor"))
    # Not refresh: bench.inprocess makes its refresh tokens in its own process, one per
    # request, and that work would not cancel out.
    counted_scenarios = [s.name for s in SCENARIOS if not s.refresh_tokens]
    parser.add_argument("scenario", choices=counted_scenarios)
    stubbed_hash.add_option(parser)
    args = parser.parse_args(argv)
    stubbed_hash.check_option(parser, args)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        few, few_made = counted(args.app, args.scenario, SHORT, args.hash_stubbed, folder)
        many, many_made = counted(args.app, args.scenario, LONG, args.hash_stubbed, folder)
    per_request = (many - few) / (many_made - few_made)
    label = f"{args.app}{' (hash stubbed)' if args.hash_stubbed else ''} {args.scenario}"
    print(f"{label}: {per_request:,.0f} instructions per request")


if __name__ == "__main__":
    main()
