"""Install the test plugin distributions for real (pip --target), outside the project's venv.

Each set goes into its own folder, which a test puts on `sys.path` so that
`importlib.metadata` discovers the entry points exactly as it would for any installed
package. The app that `make run` serves never sees them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dists"

SETS: dict[str, list[str]] = {
    "main": ["courtyard-alpha", "courtyard-beta"],
    "clone": ["courtyard-alpha-clone"],
    "broken": ["courtyard-broken"],
}


def _fingerprint(names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        for path in sorted((FIXTURES / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                digest.update(str(path.relative_to(FIXTURES)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def install(names: list[str], target: Path) -> Path:
    """pip-install the fixture projects `names` into `target` (no deps, no build isolation)."""
    target.mkdir(parents=True, exist_ok=True)
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
            *[str(FIXTURES / n) for n in names],
        ],
        check=True,
        capture_output=True,
    )
    return target


def install_set(set_name: str, root: Path) -> Path:
    """Install a named set once per content version (reused across runs while unchanged)."""
    names = SETS[set_name]
    target = root / f"{set_name}-{_fingerprint(names)}"
    marker = target / ".complete"
    if not marker.exists():
        install(names, target)
        marker.touch()
    return target
