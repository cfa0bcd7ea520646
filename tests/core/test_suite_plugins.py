"""The suite passes whatever else is installed beside Courtyard: its apps and commands enable
the suite's own plugins (`tests.support.plugin_selection`), not every installed one.

`stranger` is a real installed distribution whose plugin stops any app that enables it
unconfigured; the representative modules are run by a real pytest with it installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.kernel import Kernel
from core.settings import ConfigurationError, CoreSettings
from tests.conftest import BUILD_ROOT
from tests.support.courtyard_cli import PROJECT_ROOT
from tests.support.databases import PG_ENV
from tests.support.distributions import install_set
from tests.support.plugin_selection import ENABLED

# Apps and kernels built in process, and `courtyard` run in subprocesses, with and without
# test distributions of their own, relying on the default selection.
REPRESENTATIVE = (
    "tests/core/test_openapi.py",
    "tests/core/test_plugins.py",
    "tests/core/test_cli.py::test_a_plugins_command_reads_courtyard_toml_in_the_working_directory",
    "tests/core/test_cli.py::test_a_disabled_plugins_command_group_is_gone",
)

DISCOVERED = "from core.plugin import discover; print([p.name for p in discover()])"


@pytest.fixture(scope="module")
def stranger() -> Path:
    """The folder the `courtyard-stranger` distribution is installed in."""
    return install_set("stranger", BUILD_ROOT)


def environment_with(stranger: Path) -> dict[str, str]:
    """A shell's environment in which `stranger` is installed (on the path of every Python
    started with it), with no COURTYARD_* setting; SQLite only, as the selection does not
    depend on the database."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COURTYARD_") and key not in ("PYTHONPATH", PG_ENV)
    }
    environ["PYTHONPATH"] = os.pathsep.join([str(stranger), str(PROJECT_ROOT)])
    return environ


def test_the_stranger_stops_an_app_that_enables_every_installed_plugin(
    stranger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the stranger is a real threat to a suite that enables whatever is installed,
    so the test below fails if the selection stops working."""
    monkeypatch.syspath_prepend(str(stranger))
    monkeypatch.delenv(ENABLED)  # unset: every installed plugin, as outside the suite

    with pytest.raises(ConfigurationError, match="COURTYARD_STRANGER__API_KEY"):
        Kernel.build(CoreSettings(env="test", database_url="sqlite+aiosqlite:///:memory:"))


def test_representative_modules_pass_with_a_stranger_installed(stranger: Path) -> None:
    environ = environment_with(stranger)
    seen = subprocess.run(
        [sys.executable, "-c", DISCOVERED],
        cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "'stranger'" in seen.stdout  # the inner run has it installed

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *REPRESENTATIVE],
        cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary
    assert "failed" not in summary
    assert "error" not in summary
