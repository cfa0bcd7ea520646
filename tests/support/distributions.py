"""Install the test plugin distributions for real (pip --target), outside the project's venv.

Each set goes into its own folder, which a test puts on `sys.path` so that
`importlib.metadata` discovers the entry points exactly as it would for any installed
package. The app that `make run` serves never sees them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dists"

SETS: dict[str, list[str]] = {
    "main": ["courtyard-alpha", "courtyard-beta"],
    "clone": ["courtyard-alpha-clone"],
    "broken": ["courtyard-broken"],
    "testauth": ["courtyard-testauth"],
    "userwatch": ["courtyard-userwatch"],
    "rogue": ["courtyard-rogue"],
    "oldcore": ["courtyard-oldcore"],
    "stranger": ["courtyard-stranger"],
}


def _fingerprint(names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        for path in sorted((FIXTURES / name).rglob("*")):
            parts = path.relative_to(FIXTURES / name).parts
            generated = {"__pycache__", "build"} & set(parts) or any(
                p.endswith(".egg-info") for p in parts
            )
            if path.is_file() and not generated:
                digest.update(str(path.relative_to(FIXTURES)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def install(names: list[str], target: Path) -> Path:
    """pip-install the fixture projects `names` into `target` (no deps, no build isolation)."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # Build from a clean copy, so no stale build output of an earlier version leaks in.
        sources = [
            shutil.copytree(FIXTURES / n, Path(scratch) / n, ignore=_GENERATED) for n in names
        ]
        _pip_install(sources, target)
    return target


_GENERATED = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")


def _pip_install(sources: list[Path], target: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--no-index",
            "--target",
            str(target),
            *[str(src) for src in sources],
        ],
        check=True,
        capture_output=True,
    )


def install_set(set_name: str, root: Path) -> Path:
    """Install a named set once per content version (reused across runs while unchanged)."""
    names = SETS[set_name]
    target = root / f"{set_name}-{_fingerprint(names)}"
    if not target.exists():
        # Install beside it and rename, so a concurrent run never sees half an install.
        staging = root / f".{target.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        install(names, staging)
        try:
            staging.rename(target)
        except OSError:  # another run finished first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def built_in_plugins() -> frozenset[str]:
    """The plugins the project itself registers (`user`, …): installed in every test run."""
    return frozenset(
        ep.name
        for ep in importlib_metadata.entry_points(group="courtyard.plugins")
        if ep.dist is not None and ep.dist.name == "courtyard"
    )


def without_built_ins(names: Iterable[str]) -> list[str]:
    """`names` minus the built-in plugins, for tests about the fixture plugins."""
    built_ins = built_in_plugins()
    return [name for name in names if name not in built_ins]
