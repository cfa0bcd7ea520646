"""Which files a `courtyard` process removes, watched from inside it, as it runs for real.

`watching_removals(folder)` gives the PYTHONPATH entry and environment that make each
process started with them record every file removal it attempts (Python's `os.remove`
audit event, raised by `os.remove`, `os.unlink` and `Path.unlink`, whether or not the
file is there) in a file of its own: a `sitecustomize` module, which Python imports at
start-up. It only watches; nothing the process does changes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ENV = "SCALE_REMOVALS_DIR"
_SITECUSTOMIZE = '''
"""Written by tests/scale/removals.py: record this process's file removals."""
import os
import sys

_folder = os.environ.get("{env}")
if _folder:
    _log = open(os.path.join(_folder, f"{{os.getpid()}}.log"), "a", buffering=1)

    def _record(event, args):
        if event == "os.remove":
            _log.write(os.fsdecode(args[0]) + "\\n")

    sys.addaudithook(_record)
'''


def watching_removals(folder: Path) -> tuple[Path, dict[str, str]]:
    """(a PYTHONPATH entry, environment variables) for the processes to watch; their
    records go to `folder`."""
    hook = folder / "hook"
    records = folder / "records"
    hook.mkdir(parents=True)
    records.mkdir()
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(env=ENV))
    return hook, {ENV: str(records)}


def removed(folder: Path, root: Path) -> dict[str, Counter[str]]:
    """For each watched process (by pid): how many times it tried to remove each file
    under `root`, by path relative to `root`."""
    base = root.resolve()
    by_process: dict[str, Counter[str]] = {}
    for record in sorted((folder / "records").glob("*.log")):
        paths = [Path(line) for line in record.read_text().splitlines() if line]
        by_process[record.stem] = Counter(
            str(p.relative_to(base)) for p in paths if p.is_relative_to(base)
        )
    return by_process
