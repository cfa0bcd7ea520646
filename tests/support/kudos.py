"""The `kudos` test plugin (tests/fixtures/dists/courtyard-kudos), installed for real into a
folder of its own, and `courtyard` run with or without that folder on its path.

`kudos` owns one table, `kudos`, with two foreign keys into `user`, and ships no revision:
a test writes the first one with `courtyard db revision --autogenerate`, as its author
would. Leaving the folder off the path is the plugin uninstalled: `importlib.metadata`
no longer finds its entry point nor its revision files, while the database keeps its
table and its row of `alembic_version`.
"""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path
from typing import Any

from tests.support.courtyard_cli import run_courtyard
from tests.support.distributions import install

USER_REV = "9a7e5c310001"  # the user branch's revision that creates `user`
BUILT_INS = "user,auth,mail,oauth,upload"
WITH_KUDOS = f"{BUILT_INS},kudos"


def install_kudos(folder: Path) -> Path:
    """pip-install courtyard-kudos into `folder`; the folder to put on the path."""
    return install(["courtyard-kudos"], folder)


def versions(site: Path) -> Path:
    return site / "courtyard_kudos" / "migrations" / "versions"


def revision_files(site: Path) -> set[Path]:
    return set(versions(site).glob("*.py"))


def revision_module(path: Path) -> dict[str, Any]:
    """The variables a revision file sets (`revision`, `depends_on`, …)."""
    return runpy.run_path(str(path))


def courtyard(
    *args: str, url: str, enabled: str, cwd: Path, site: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`courtyard ARGS` on the database at `url`, with kudos installed from `site` (or not
    installed at all)."""
    return run_courtyard(
        *args,
        cwd=cwd,
        pythonpath=[site] if site is not None else [],
        env={
            "COURTYARD_DATABASE_URL": url,
            "COURTYARD_ENABLED_PLUGINS": enabled,
            "COURTYARD_ENV": "test",
        },
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must succeed; it printed no traceback."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def write_first_revision(site: Path, url: str, cwd: Path) -> Path:
    """`courtyard db revision --autogenerate` for kudos: the file it wrote."""
    before = revision_files(site)
    output = ok(
        courtyard(
            *("db", "revision", "--plugin", "kudos", "-m", "create kudos", "--autogenerate"),
            url=url,
            enabled=WITH_KUDOS,
            cwd=cwd,
            site=site,
        )
    )
    (path,) = revision_files(site) - before
    assert f"wrote {path}" in output
    return path
