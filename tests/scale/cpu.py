"""CPU time spent by each component of the deployment, read from /proc (Linux).

A throughput figure alone does not say what limits it; the CPU seconds each component
used during the measurement do. A component is a set of root processes and everything
they started (a PostgreSQL server's postmaster and its backends, `runuser` and the
pgbouncer it runs); processes that ended during the measurement are not counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of `pid`, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text.rsplit(")", 1)[1].split()
    parent, user, system = int(fields[1]), int(fields[11]), int(fields[12])
    return parent, (user + system) / _TICKS


def _processes() -> dict[int, tuple[int, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def cpu_seconds(components: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds used so far by each component (name -> root pids), its descendants
    included; the whole machine's busy time under "machine"."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    totals = {}
    for name, roots in components.items():
        seen: set[int] = set()
        stack = [pid for pid in roots if pid in processes]
        while stack:
            pid = stack.pop()
            if pid not in seen:
                seen.add(pid)
                stack += children.get(pid, [])
        totals[name] = sum(processes[pid][1] for pid in seen)
    totals["machine"] = _machine_busy()
    return totals


def _machine_busy() -> float:
    """Seconds every CPU of the machine spent not idle, summed (from /proc/stat)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in first]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / _TICKS
