"""The `register_*` hooks (readiness checks, CLI commands): what a plugin author sees when an
implementation is async, registers a check name twice or raises.

The faulty plugins are one real distribution, `courtyard-faulty`, written here and
pip-installed into a folder of its own, then found through its entry points like any other.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import make_settings, running
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "courtyard-faulty"
version = "0.0.1"
requires-python = ">=3.11"

[project.entry-points."courtyard.plugins"]
asyncready = "courtyard_faulty.asyncready:plugin"
asynccmds = "courtyard_faulty.asynccmds:plugin"
cororeturn = "courtyard_faulty.cororeturn:plugin"
twochecks = "courtyard_faulty.twochecks:plugin"
raisingready = "courtyard_faulty.raisingready:plugin"
latestart = "courtyard_faulty.latestart:plugin"
raisingcmds = "courtyard_faulty.raisingcmds:plugin"

[tool.setuptools.packages.find]
include = ["courtyard_faulty*"]
"""

MODULES = {
    "__init__": "",
    "asyncready": """
        from core.hookspecs import ReadinessCheck, hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="asyncready", package="courtyard_faulty", hooks="asyncready")


        async def ok() -> None:
            pass


        @hookimpl
        async def register_readiness_checks() -> list[ReadinessCheck]:
            return [ReadinessCheck("ok", ok)]
        """,
    "asynccmds": """
        import typer

        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="asynccmds", package="courtyard_faulty", hooks="asynccmds:Hooks")


        class Hooks:
            def __init__(self, container: object) -> None:
                self.container = container

            @hookimpl
            async def register_commands(self) -> list[typer.Typer]:
                return [typer.Typer(name="asynccmds")]
        """,
    "cororeturn": """
        from core.hookspecs import ReadinessCheck, hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="cororeturn", package="courtyard_faulty", hooks="cororeturn")


        async def checks() -> list[ReadinessCheck]:
            return []


        @hookimpl
        def register_readiness_checks():  # a plain function, but it returns a coroutine
            return checks()
        """,
    "twochecks": """
        from core.hookspecs import ReadinessCheck, hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="twochecks", package="courtyard_faulty", hooks="twochecks")


        async def bucket() -> None:
            pass


        async def disk() -> None:
            raise RuntimeError("disk full")


        @hookimpl
        def register_readiness_checks() -> list[ReadinessCheck]:
            return [ReadinessCheck("storage", bucket), ReadinessCheck("storage", disk)]
        """,
    "raisingready": """
        from core.hookspecs import ReadinessCheck, hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="raisingready", package="courtyard_faulty", hooks="raisingready")


        @hookimpl
        def register_readiness_checks() -> list[ReadinessCheck]:
            raise RuntimeError("bucket name missing")
        """,
    "latestart": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(
            name="latestart", package="courtyard_faulty", requires=("alpha",), hooks="latestart"
        )


        @hookimpl
        def startup(app: object) -> None:
            raise RuntimeError("no credentials")
        """,
    "raisingcmds": """
        import typer

        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="raisingcmds", package="courtyard_faulty", hooks="raisingcmds")


        @hookimpl
        def register_commands() -> list[typer.Typer]:
            raise KeyError("greeting")
        """,
}

ASYNC_READY = (
    "plugin 'asyncready': hook register_readiness_checks must be a plain function "
    "(it returns a list), not async"
)
ASYNC_COMMANDS = (
    "plugin 'asynccmds': hook register_commands must be a plain function "
    "(it returns a list), not async"
)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `courtyard-faulty` is installed into (pip, no index, no build isolation)."""
    root = tmp_path_factory.mktemp("faulty")
    project = root / "courtyard-faulty"
    package = project / "courtyard_faulty"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    for name, source in MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "--target", str(site), str(project)],
        check=True, capture_output=True,
    )  # fmt: skip
    return site


@pytest.fixture
def use_faulty(monkeypatch: pytest.MonkeyPatch, faulty: Path, main_plugins: None) -> None:
    """courtyard-faulty installed, beside alpha and beta."""
    monkeypatch.syspath_prepend(str(faulty))


def app_of(database_url: str, enabled: str) -> Any:
    return create_app(make_settings(database_url, enabled_plugins=enabled))


def lifecycle_of(app: Any) -> list[str]:
    """What alpha's and beta's startup and shutdown hooks recorded."""
    events: list[str] = app.state.kernel.container_of("alpha").lifecycle()
    return events


async def startup_error(app: Any) -> str:
    """The one-line error that stops `app` from starting (fails if it starts)."""
    with pytest.raises(ConfigurationError) as caught:
        async with running(app):
            pytest.fail("the app started")
    return str(caught.value)


# -- an async `register_*` implementation -------------------------------------------------


def test_an_async_register_readiness_checks_stops_startup_naming_plugin_and_hook(
    use_faulty: None, database_url: str
) -> None:
    """Stops an obscure `'coroutine' object is not iterable` (and a coroutine never
    awaited) at startup: the app is refused when it is built, in one line."""
    with pytest.raises(ConfigurationError) as caught:
        app_of(database_url, "alpha,asyncready")
    assert str(caught.value) == ASYNC_READY


async def test_a_register_hook_returning_a_coroutine_stops_startup_naming_it(
    use_faulty: None, database_url: str
) -> None:
    app = app_of(database_url, "alpha,cororeturn")
    assert await startup_error(app) == (
        "plugin 'cororeturn': hook register_readiness_checks must be a plain function "
        "(it returns a list), not async"
    )


def test_an_async_register_commands_is_one_line_from_the_cli(faulty: Path, tmp_path: Path) -> None:
    """Stops `courtyard` crashing with a traceback when an enabled plugin's
    register_commands is async: one line naming the plugin and the hook, status 2."""
    env = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "COURTYARD_ENABLED_PLUGINS": "asynccmds",
    }
    for args in (("plugins",), ("asynccmds", "--help")):
        result = run_courtyard(*args, cwd=tmp_path, pythonpath=[faulty], env=env, timeout=60)
        assert_one_line_error(result, ASYNC_COMMANDS)


def test_a_failing_register_commands_is_one_line_naming_the_plugin(
    faulty: Path, tmp_path: Path
) -> None:
    env = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "COURTYARD_ENABLED_PLUGINS": "raisingcmds",
    }
    result = run_courtyard("plugins", cwd=tmp_path, pythonpath=[faulty], env=env, timeout=60)
    assert_one_line_error(
        result, "plugin 'raisingcmds': register_commands failed: KeyError: 'greeting'"
    )


def test_plugins_check_reports_async_register_hooks(faulty: Path, tmp_path: Path) -> None:
    env = {"COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    result = run_courtyard(
        "plugins", "--check", cwd=tmp_path, pythonpath=[faulty], env=env, timeout=60
    )
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    for name, hook in (
        ("asyncready", "register_readiness_checks"),
        ("asynccmds", "register_commands"),
    ):
        assert (
            f"FAIL {name}: hook {hook} must be a plain function (it returns a list), not async"
        ) in lines, result.stdout
    assert "ok  twochecks 0.0.1" in lines, result.stdout


# -- the same readiness check name twice --------------------------------------------------


async def test_a_readiness_check_name_registered_twice_stops_startup(
    use_faulty: None, database_url: str
) -> None:
    """Stops one check silently hiding the other in /health/ready (here the failing one:
    `twochecks.storage` would have read "ok" or "failed" depending on which came last)."""
    app = app_of(database_url, "alpha,twochecks")
    assert await startup_error(app) == (
        "plugin 'twochecks': readiness check 'storage' is registered more than once "
        "(give each check its own name)"
    )
    assert app.state.database.write_engine.pool.checkedin() == 0


# -- a register_readiness_checks that raises ----------------------------------------------


async def test_a_failing_register_readiness_checks_names_the_plugin_and_disposes_engines(
    use_faulty: None, database_url: str
) -> None:
    app = app_of(database_url, "alpha,beta,raisingready")
    database = app.state.database
    await database.ping()  # a connection in the pool, as a plugin's import-time work might leave
    assert database.write_engine.pool.checkedin() >= 1

    with pytest.raises(ConfigurationError) as caught:
        async with running(app):
            pytest.fail("the app started although raisingready's readiness checks failed")

    assert str(caught.value) == (
        "plugin 'raisingready': register_readiness_checks failed: RuntimeError: bucket name missing"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)
    # The engines were disposed: no connection left open behind the failed startup.
    assert database.write_engine.pool.checkedin() == 0
    assert database.read_engine.pool.checkedin() == 0
    # Readiness checks are gathered before any plugin starts: none started, none stopped.
    assert lifecycle_of(app) == []


async def test_plugins_already_started_are_stopped_when_a_later_one_fails_to_start(
    use_faulty: None, database_url: str
) -> None:
    """The same clean-up, once plugins have started: alpha started, then latestart (which
    requires it) failed, so alpha is stopped and the engines are disposed."""
    app = app_of(database_url, "alpha,latestart")
    database = app.state.database
    await database.ping()
    assert await startup_error(app) == "plugin 'latestart' failed to start: no credentials"
    assert lifecycle_of(app) == ["alpha started", "alpha stopped"]
    assert database.write_engine.pool.checkedin() == 0
