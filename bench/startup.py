"""Startup time to the first 200, with the built-in plugins and with 50 more.

The 50 are made by `courtyard new-plugin`'s renderer (the same files a plugin author gets)
into a temporary folder, with one `*.dist-info` naming their 50 entry points: to
`importlib.metadata` that folder on `PYTHONPATH` is one installed distribution, so the
core discovers them exactly as it discovers any installed plugin. Nothing is installed
into the project's environment.

Every start reads bytecode, as a deployed install does (`pip install` byte-compiles what
it installs): the generated plugins and Courtyard's own packages are compiled first. So
the figure does not depend on whether the environment lets Python write its bytecode
cache (`PYTHONDONTWRITEBYTECODE`), which would otherwise make every start compile some
six hundred source files.
"""

from __future__ import annotations

import compileall
import statistics
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bench.servers import timed_start
from core.cli.new_plugin import render

DIST = "courtyard_bench_plugins"
PACKAGES = ("core", "plugins")


def generate(count: int, folder: Path) -> list[str]:
    """`count` generated plugins in `folder`, discoverable through one distribution."""
    names = [f"bench{i:02d}" for i in range(count)]
    entry_points = ["[courtyard.plugins]"]
    for name in names:
        project = folder / "projects" / name
        render(name, project)
        (project / f"courtyard_{name}").rename(folder / f"courtyard_{name}")
        entry_points.append(f"{name} = courtyard_{name}:plugin")
    info = folder / f"{DIST}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("\n".join(entry_points) + "\n")
    return names


def byte_compile(folder: Path) -> None:
    if not compileall.compile_dir(folder, quiet=1):
        raise RuntimeError(f"could not byte-compile {folder}")


def median_start(env: Mapping[str, str], runs: int) -> float:
    return statistics.median(timed_start("courtyard", env) for _ in range(runs))


def startup_times(env: Mapping[str, str], runs: int, plugins: int = 50) -> dict[str, float]:
    """Median seconds to the first 200: built-in plugins only, and with `plugins` more."""
    root = Path(__file__).resolve().parent.parent
    for package in PACKAGES:
        byte_compile(root / package)
    builtin = median_start(env, runs)
    with tempfile.TemporaryDirectory() as scratch:
        generate(plugins, Path(scratch))
        byte_compile(Path(scratch))
        path = ":".join(p for p in (scratch, env.get("PYTHONPATH", "")) if p)
        many = median_start({**env, "PYTHONPATH": path}, runs)
    return {"builtin_plugins_s": builtin, f"with_{plugins}_plugins_s": many}
