"""The test kit plugin authors get (`core.testing`): fixtures, and the contract check.

Both are exercised the way an author meets them: the fixtures through a separate pytest
run over a test file written here (the kit is loaded through its `pytest11` entry point,
as in any project that installs Courtyard), and the contract check on real installed
plugins — the built-ins, and a fixture distribution that breaks every rule it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.testing import PluginConformanceError, assert_plugin_conforms
from core.testing.databases import PG_ENV, backends
from tests.conftest import BUILD_ROOT
from tests.support.distributions import install_set

PROJECT_ROOT = Path(__file__).resolve().parents[2]

AUTHOR_TESTS = """
import pytest
from sqlalchemy import func, select


@pytest.fixture
def courtyard_plugins():
    return "user"


async def make_admin(app):
    service = app.state.kernel.container_of("user").service()
    return await service.create("ada@example.com", "Ada", "admin")


async def test_an_admin_lists_users(courtyard_app, courtyard_client, act_as):
    admin = await make_admin(courtyard_app)
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id, "admin"))
    assert response.status_code == 200, response.text
    assert [u["email"] for u in response.json()["items"]] == ["ada@example.com"]


async def test_the_previous_tests_rows_are_gone(courtyard_app, courtyard_client, act_as):
    admin = await make_admin(courtyard_app)  # would be a 409 if the first one were still there
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id, "admin"))
    assert len(response.json()["items"]) == 1


async def test_a_stranger_is_unauthenticated(courtyard_client, act_as):
    unknown = act_as("usr_01JD8X0000000000000000000A", "admin")
    assert (await courtyard_client.get("/api/v1/users/me", headers=unknown)).status_code == 401
    assert (await courtyard_client.get("/api/v1/users/me")).status_code == 401


def test_only_the_chosen_plugins_are_enabled(courtyard_app):
    assert courtyard_app.state.kernel.plugin_names == ["user"]
"""


def run_pytest(folder: Path, *, pg: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    if pg:
        env[PG_ENV] = os.environ[PG_ENV]
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("backend", backends())
def test_an_author_tests_a_plugin_with_the_kits_fixtures(tmp_path: Path, backend: str) -> None:
    """The fixtures give a migrated, running app with the chosen plugins, a client, a way to
    act as a user without `auth`, and tests that do not see each other's rows — on SQLite,
    and on a fresh PostgreSQL database when the variable names a server."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))

    result = run_pytest(tmp_path, pg=backend == "postgresql")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("name", ["user", "mail", "auth"])
def test_the_built_in_plugins_conform(name: str, backend: str) -> None:
    assert_plugin_conforms(name, backend=backend)


def test_an_unknown_plugin_is_reported() -> None:
    with pytest.raises(PluginConformanceError, match="no plugin 'nosuch' is installed"):
        assert_plugin_conforms("nosuch")


def test_every_broken_rule_is_reported_in_one_error(tmp_path: Path) -> None:
    """A plugin that reaches into another's internals, uses an api it does not require,
    names a table without its prefix and mounts an undocumented route hears about all of
    it at once, each problem on its own line."""
    rogue = install_set("rogue", BUILD_ROOT)
    check = "from core.testing import assert_plugin_conforms; assert_plugin_conforms('rogue')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(rogue), str(PROJECT_ROOT)])

    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    message = result.stderr.split("PluginConformanceError: ", 1)[1]
    lines = message.strip().splitlines()
    assert lines[0] == "plugin 'rogue' does not conform:"
    assert sorted(lines[1:]) == sorted(
        [
            "- models.py:5 imports plugins.user.api.User without listing 'user' in `requires`",
            "- models.py:6 imports plugins.user.service.UserService, an internal module of "
            "plugin 'user'; import only plugins.user.api",
            "- table 'stuff' does not carry the plugin's name (use 'rogue' or 'rogue_…')",
            "- GET /api/v1/rogue/{stuff_id}: no description (give the route a docstring)",
            "- GET /api/v1/rogue/{stuff_id}: names a resource but does not document 404",
        ]
    )
