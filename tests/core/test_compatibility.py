"""Core compatibility (`Plugin.core_version`) and `courtyard plugins --check`.

The plugins are real installed distributions: `courtyard-oldcore` brings `oldcore`
(`core_version=">=99"`) and `badrange` (a `core_version` that is no version range).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import __version__
from core.app import create_app
from core.kernel import Kernel
from core.plugin import Plugin, PluginError
from core.settings import CoreSettings
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard
from tests.support.distributions import built_in_plugins

OLDCORE_LINE = (
    f"plugin 'oldcore' supports core >=99, but this is core {__version__} "
    "(upgrade the plugin or the core, or disable it)"
)
BADRANGE_LINE = (
    "plugin 'badrange': core_version 'version one or two' is not a version range: use "
    "PEP 440 specifiers, e.g. '>=1,<2'"
)
BUILT_IN_OK = [f"ok  {name} 0.1.0" for name in sorted(built_in_plugins())]

Courtyard = Callable[..., subprocess.CompletedProcess[str]]


def settings(**overrides: Any) -> CoreSettings:
    values: dict[str, Any] = {"env": "test", "database_url": "sqlite+aiosqlite:///./compat.db"}
    values.update(overrides)
    return CoreSettings(**values)


@pytest.fixture
def courtyard(dists: dict[str, Path], tmp_path: Path) -> Courtyard:
    """`courtyard(*args, sets=(...), **env)`: the console script in the test's own folder."""

    def run(
        *args: str, sets: tuple[str, ...] = ("main", "oldcore"), **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = {"COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", **env}
        return run_courtyard(
            *args, cwd=tmp_path, pythonpath=[dists[s] for s in sets], env=environ, timeout=60
        )

    return run


def by_plugin(stdout: str) -> dict[str, list[str]]:
    """`--check` output lines grouped by the plugin they name (the second word)."""
    lines: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        name = line.split()[1].rstrip(":")
        lines.setdefault(name, []).append(line)
    return lines


# -- the descriptor ----------------------------------------------------------------------


def test_a_range_admits_the_core_versions_it_names_pre_releases_included() -> None:
    """Protects the comparison: PEP 440 ranges, a pre-release core inside a range admitted,
    and no declared range meaning every core."""
    plugin = Plugin(name="ranged", package="courtyard_ranged", core_version=">=0.1,<1")
    assert plugin.supports_core("0.1.0")
    assert plugin.supports_core("0.9.2")
    assert plugin.supports_core("0.2.0rc1")
    assert not plugin.supports_core("1.0.0")
    assert not plugin.supports_core("0.0.9")
    assert Plugin(name="anycore", package="courtyard_anycore").supports_core("42.0")


def test_the_built_in_plugins_support_the_running_core() -> None:
    """Protects the built-ins' own declaration: they must keep starting on this core."""
    kernel = Kernel.build(settings())
    assert set(kernel.plugin_names) == built_in_plugins()
    for plugin in kernel.plugins:
        assert plugin.core_version is not None
        assert plugin.supports_core()


@pytest.mark.parametrize("bad", ["version one or two", ">>1", "", "  "])
def test_an_invalid_range_is_refused_naming_the_plugin_and_the_value(bad: str) -> None:
    """Protects the descriptor check: a range that cannot be parsed fails when the
    descriptor is created, naming the plugin and the bad value, never 'any version'."""
    with pytest.raises(PluginError) as caught:
        Plugin(name="notes", package="courtyard_notes", core_version=bad)
    assert str(caught.value) == (
        f"plugin 'notes': core_version {bad!r} is not a version range: use PEP 440 "
        "specifiers, e.g. '>=1,<2'"
    )


# -- startup ------------------------------------------------------------------------------


def test_an_installed_plugin_with_an_invalid_range_stops_the_app_when_enabled(
    use_dists: Callable[..., None],
) -> None:
    """Protects the installed case of the descriptor check: the refusal is the one line
    naming the plugin and its bad value, not an import traceback."""
    use_dists("main", "oldcore")
    with pytest.raises(PluginError) as caught:
        create_app(settings(enabled_plugins="alpha,badrange"))
    assert str(caught.value) == BADRANGE_LINE


@pytest.mark.parametrize(
    "configuration",
    [{"enabled_plugins": "alpha,oldcore"}, {"disabled_plugins": "badrange"}],
    ids=["allow-list", "every-installed-plugin"],
)
def test_an_enabled_incompatible_plugin_stops_the_app_with_one_line(
    use_dists: Callable[..., None], configuration: dict[str, str]
) -> None:
    """Protects the startup refusal: the line names the plugin, its range and this core."""
    use_dists("main", "oldcore")
    with pytest.raises(PluginError) as caught:
        create_app(settings(**configuration))
    assert str(caught.value) == OLDCORE_LINE


async def test_a_disabled_incompatible_plugin_is_ignored(
    use_dists: Callable[..., None], app_client: Any
) -> None:
    """Protects 'disabled contributes nothing': an incompatible plugin that is switched off
    does not stop the app, which starts and serves the others."""
    use_dists("main", "oldcore")
    async with app_client(disabled_plugins="oldcore,badrange") as client:
        assert "oldcore" not in client.app.state.kernel.plugin_names
        assert (await client.get("/health/live")).status_code == 200
        created = await client.post("/api/v1/alpha/items", json={"name": "still here"})
        assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "args", [("plugins",), ("serve",), ("db", "current"), ("alpha", "greet", "Bob")]
)
def test_every_command_refuses_an_enabled_incompatible_plugin_with_one_line(
    courtyard: Courtyard, args: tuple[str, ...]
) -> None:
    """Protects the operator's view: `courtyard serve` (and every other command) prints
    the same one line and exits 2 instead of starting."""
    result = courtyard(*args, COURTYARD_ENABLED_PLUGINS="alpha,beta,oldcore")
    line = assert_one_line_error(result, status=2)
    assert line == f"courtyard: error: {OLDCORE_LINE}"


# -- courtyard plugins --check ------------------------------------------------------------


def test_check_fails_the_incompatible_and_the_unloadable_and_passes_the_rest(
    courtyard: Courtyard,
) -> None:
    """Protects --check: every installed plugin is validated, enabled or not, even though
    the configuration would not start (oldcore is enabled); one line each, exit 1."""
    result = courtyard("plugins", "--check")
    assert result.returncode == 1, result
    assert result.stderr == ""
    assert result.stdout.splitlines() == sorted(
        [
            "ok  alpha 1.2.0",
            "FAIL badrange: " + BADRANGE_LINE.removeprefix("plugin 'badrange': "),
            "ok  beta 0.3.0-descriptor",
            "FAIL oldcore: supports core >=99, but this is core "
            f"{__version__} (upgrade the plugin or the core, or disable it)",
            *BUILT_IN_OK,
        ],
        key=lambda line: line.split()[1],
    )


def test_check_passes_when_every_plugin_is_fine(courtyard: Courtyard) -> None:
    """Protects the success path: only good plugins → an `ok` line each and exit 0."""
    result = courtyard("plugins", "--check", sets=("main",))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == sorted(
        ["ok  alpha 1.2.0", "ok  beta 0.3.0-descriptor", *BUILT_IN_OK],
        key=lambda line: line.split()[1],
    )


def test_the_built_in_plugins_pass_the_check(courtyard: Courtyard) -> None:
    """Protects the project's own plugins: installed alone, they pass --check."""
    result = courtyard("plugins", "--check", sets=())
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == BUILT_IN_OK


def test_check_validates_the_current_settings_of_disabled_plugins_too(
    courtyard: Courtyard,
) -> None:
    """Protects the settings part of --check: a plugin's invalid or unknown setting is
    reported even while the plugin is disabled (so it is found before it is switched on)."""
    result = courtyard(
        "plugins",
        "--check",
        sets=("main",),
        COURTYARD_DISABLED_PLUGINS="alpha,beta",
        COURTYARD_ALPHA__MAX_NAME_LENGTH="lots",
        COURTYARD_BETA__COLOUR="blue",
    )
    assert result.returncode == 1, result
    lines = by_plugin(result.stdout)
    [alpha] = lines["alpha"]
    assert alpha.startswith("FAIL alpha: ")
    assert "COURTYARD_ALPHA__MAX_NAME_LENGTH" in alpha
    assert lines["beta"] == [
        "FAIL beta: unknown setting COURTYARD_BETA__COLOUR: plugin 'beta' has no setting "
        "'colour' (in the environment)"
    ]


def test_check_reports_each_kind_of_broken_plugin(courtyard: Courtyard) -> None:
    """Protects the rest of --check, one problem each: import error, name mismatch, a
    missing requirement, a cycle, a lazy reference that does not resolve, a container
    input the core cannot give, a whole container asked for, a hook nobody declares, a
    URL prefix taken. The lines are startup's messages, less the plugin's name."""
    result = courtyard("plugins", "--check", sets=("main", "broken"))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    lines = by_plugin(result.stdout)
    expected = {
        "importfail": "from distribution 'courtyard-broken' failed to import",
        "misnamed": "plugin 'othername' from distribution 'courtyard-broken' is registered "
        "under the entry point name 'misnamed'",
        "orphan": "requires 'missing', which is not installed",
        "cyclea": "dependency cycle between plugins: cyclea -> cycleb -> cyclea",
        "cycleb": "dependency cycle between plugins: cycleb -> cyclea -> cycleb",
        "badref": "cannot load 'routr:build_router' from courtyard_broken",
        "needsinput": "container: declares dependency 'payment_gateway', which the core does "
        "not provide",
        "wantsall": "container: declares all of plugin 'user''s container",
        "stray": "implements hook 'nobody_declares_this', which no installed plugin declares",
        "prefixclash": "plugins 'alpha' and 'prefixclash' both mount routes at /api/v1/alpha",
    }
    for name, fragment in expected.items():
        [line] = lines[name]
        assert line.startswith(f"FAIL {name}: "), line
        assert fragment in line, line
    for name in ("alpha", "beta", "needsalpha", *built_in_plugins()):
        assert lines[name][0].startswith(f"ok  {name} "), lines[name]


def test_check_names_every_distribution_of_a_duplicated_name_once(courtyard: Courtyard) -> None:
    """Protects the duplicate case: one FAIL line names both distributions, and the plugins
    depending on that name are not blamed for it."""
    result = courtyard("plugins", "--check", sets=("main", "clone"))
    assert result.returncode == 1, result
    lines = by_plugin(result.stdout)
    assert lines["alpha"] == [
        "FAIL alpha: duplicate plugin name 'alpha': provided by distributions "
        "'courtyard-alpha' (courtyard_alpha:plugin) and 'courtyard-alpha-clone' "
        "(courtyard_alpha_clone:plugin)"
    ]
    assert lines["beta"] == ["ok  beta 0.3.0-descriptor"]


def test_check_with_bad_core_configuration_is_one_line(courtyard: Courtyard) -> None:
    """Protects the CLI contract: configuration no plugin owns is one error line, exit 2."""
    result = courtyard("plugins", "--check", COURTYARD_DATABASE_URL="notaurl")
    assert_one_line_error(result, "COURTYARD_DATABASE_URL", status=2)


def test_plugins_without_the_flag_still_lists_them(courtyard: Courtyard) -> None:
    """Protects `courtyard plugins` as it was: with a good configuration it is the table."""
    result = courtyard("plugins", COURTYARD_DISABLED_PLUGINS="oldcore,badrange")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["NAME", "VERSION"]
