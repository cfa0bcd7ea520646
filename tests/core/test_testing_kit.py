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

from core.errors import ConflictError


@pytest.fixture
def courtyard_plugins():
    return "user"


async def test_an_admin_lists_users(courtyard_client, act_as, make_admin):
    admin = await make_admin(name="Ada")
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id))
    assert response.status_code == 200, response.text
    assert [u["name"] for u in response.json()["items"]] == ["Ada"]


async def test_the_previous_tests_rows_are_gone(courtyard_client, act_as, make_admin):
    admin = await make_admin(name="Ada")
    response = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id))
    assert len(response.json()["items"]) == 1


async def test_a_stranger_is_unauthenticated(courtyard_client, act_as):
    unknown = act_as("usr_01JD8X0000000000000000000A", "admin")
    assert (await courtyard_client.get("/api/v1/users/me", headers=unknown)).status_code == 401
    assert (await courtyard_client.get("/api/v1/users/me")).status_code == 401


def test_only_the_chosen_plugins_are_enabled(courtyard_app):
    assert courtyard_app.state.kernel.plugin_names == ["user"]


async def test_made_accounts_act_with_their_own_role(
    courtyard_client, act_as, make_user, make_admin
):
    ann = await make_user(name="Ann")
    bob = await make_user("Bob@Example.com", verified=False)
    admin = await make_admin()

    me = (await courtyard_client.get("/api/v1/users/me", headers=act_as(ann.id))).json()
    bobs = (await courtyard_client.get("/api/v1/users/me", headers=act_as(bob.id))).json()
    refused = await courtyard_client.get("/api/v1/users", headers=act_as(ann.id, "admin"))
    listed = await courtyard_client.get("/api/v1/users", headers=act_as(admin.id))

    assert (me["id"], me["email"], me["name"], me["role"]) == (
        ann.id, "user1@example.com", "Ann", "user"
    )
    assert (me["email_verified"], me["is_active"]) == (True, True)
    assert (bobs["email"], bobs["name"], bobs["email_verified"]) == (
        "Bob@Example.com", "User 2", False
    )
    assert refused.status_code == 403  # the account's role wins over the one claimed
    assert sorted(u["email"] for u in listed.json()["items"]) == [
        "Bob@Example.com", "admin1@example.com", "user1@example.com"
    ]


async def test_an_inactive_account_cannot_act(courtyard_client, act_as, make_user):
    idle = await make_user(active=False)
    assert idle.is_active is False
    response = await courtyard_client.get("/api/v1/users/me", headers=act_as(idle.id))
    assert response.status_code == 401


async def test_a_taken_email_is_refused(make_user):
    await make_user("ann@example.com")
    with pytest.raises(ConflictError, match="ANN@example.com is already in use"):
        await make_user("ANN@example.com")
"""

WITHOUT_USERS = """
import pytest


@pytest.fixture
def courtyard_plugins():
    return "mail"


async def test_making_a_user_needs_the_user_plugin(make_user):
    with pytest.raises(pytest.fail.Exception, match="need the 'user' plugin"):
        await make_user()
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
    """The fixtures give a migrated, running app with the chosen plugins, a client, real
    accounts to act as without `auth` (`make_user`, `make_admin`, `act_as`), and tests that
    do not see each other's rows — on SQLite, and on a fresh PostgreSQL database when the
    variable names a server."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    (tmp_path / "test_without_users.py").write_text(textwrap.dedent(WITHOUT_USERS))

    result = run_pytest(tmp_path, pg=backend == "postgresql")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout


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
