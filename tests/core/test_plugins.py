"""Plugins as real installed distributions: discovery, ordering, enable/disable, failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from core.app import create_app
from core.cli import build_cli
from core.cli.context import CliContext
from core.kernel import Kernel
from core.plugin import ENTRY_POINT_GROUP, Plugin, discover, order_plugins
from core.settings import ConfigurationError, CoreSettings
from tests.support.distributions import built_in_plugins, without_built_ins

BUILT_INS = sorted(built_in_plugins())

PROBLEM_JSON = "application/problem+json"


def settings(**overrides: Any) -> CoreSettings:
    """Test settings; the database is a file in the test's own working directory."""
    values: dict[str, Any] = {"env": "test", "database_url": "sqlite+aiosqlite:///./plugins.db"}
    values.update(overrides)
    return CoreSettings(**values)


async def get_openapi(core: CoreSettings) -> dict[str, Any]:
    app = create_app(core)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def run_cli(kernel: Kernel, *args: str) -> tuple[int, str]:
    """Run the `courtyard` command tree built for `kernel`, in process."""
    result = CliRunner().invoke(build_cli(CliContext(kernel)), list(args))
    return result.exit_code, result.output


# -- discovery and order -----------------------------------------------------------------


def test_installed_plugins_are_discovered_through_their_entry_points(main_plugins: None) -> None:
    found = {p.name: p for p in discover()}
    assert {"alpha", "beta"} <= set(found)
    assert found["alpha"].entry_point.group == ENTRY_POINT_GROUP
    assert found["alpha"].entry_point.value == "courtyard_alpha:plugin"

    kernel = Kernel.build(settings())
    listing = {
        item.name: (item.version, item.distribution, plugin.requires if plugin else None, error)
        for item, plugin, error in kernel.installed_plugins()
    }
    # alpha's version comes from its distribution's metadata; beta's descriptor sets its own.
    assert listing["alpha"] == ("1.2.0", "courtyard-alpha", (), None)
    assert listing["beta"] == ("0.3.0-descriptor", "courtyard-beta", ("alpha",), None)


def test_plugins_not_on_the_path_are_not_discovered() -> None:
    names = {p.name for p in discover()}
    assert not names & {"alpha", "beta", "cyclea", "importfail"}


def test_enabled_plugins_start_in_dependency_order(use_dists: Callable[..., None]) -> None:
    use_dists("main", "broken")
    kernel = Kernel.build(settings(enabled_plugins="needsalpha,beta,alpha"))
    assert kernel.plugin_names == ["alpha", "beta", "needsalpha"]


def test_order_is_topological_with_ties_broken_by_name() -> None:
    def plugin(name: str, *requires: str) -> Plugin:
        return Plugin(name=name, package="courtyard_test_order", requires=requires)

    plugins = [
        plugin("apps", "zeta"),
        plugin("zeta", "core0"),
        plugin("mid"),
        plugin("core0"),
        plugin("billing", "zeta", "apps"),
    ]
    ordered = [p.name for p in order_plugins(plugins)]
    assert ordered == ["core0", "mid", "zeta", "apps", "billing"]
    assert [p.name for p in order_plugins(reversed(plugins))] == ordered


# -- enable / disable --------------------------------------------------------------------


async def test_alpha_and_beta_enabled_from_the_environment(
    main_plugins: None, app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURTYARD_ENABLED_PLUGINS", " Alpha , BETA ,")
    async with app_client() as client:
        assert client.app.state.kernel.plugin_names == ["alpha", "beta"]
        assert (await client.get("/api/v1/beta/events")).json() == {"events": []}

        created = await client.post("/api/v1/alpha/items", json={"name": "widget"})
        assert created.status_code == 201, created.text
        item = created.json()

        listed = await client.get("/api/v1/alpha/items")
        assert listed.status_code == 200
        assert [i["id"] for i in listed.json()["items"]] == [item["id"]]

        events = await client.get("/api/v1/beta/events")
        assert events.status_code == 200
        assert events.json() == {"events": [{"item_id": item["id"], "name": "widget"}]}


async def test_a_disabled_plugin_contributes_nothing(
    main_plugins: None, app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_client(enabled_plugins="alpha,beta") as client:  # both branches migrated
        pm = client.app.state.plugin_manager
        assert [i.plugin_name for i in pm.hook.alpha_item_created.get_hookimpls()] == ["beta"]

    monkeypatch.setenv("COURTYARD_DISABLED_PLUGINS", "beta")
    async with app_client() as client:
        assert without_built_ins(client.app.state.kernel.plugin_names) == ["alpha"]

        gone = await client.get("/api/v1/beta/events")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == PROBLEM_JSON
        assert gone.json()["code"] == "core.not_found"
        assert gone.json()["instance"] == "/api/v1/beta/events"

        # alpha still works and emits its event, which nobody is registered to receive.
        created = await client.post("/api/v1/alpha/items", json={"name": "lonely"})
        assert created.status_code == 201, created.text
        pm = client.app.state.plugin_manager
        assert pm.hook.alpha_item_created.get_hookimpls() == []
        assert "beta" not in {name for name, _ in pm.list_name_plugin()}


async def test_alpha_alone_works_on_a_fresh_database(main_plugins: None, app_client: Any) -> None:
    """Enabling only alpha and migrating gives alpha its table (beta is not needed)."""
    async with app_client(enabled_plugins="alpha") as client:
        created = await client.post("/api/v1/alpha/items", json={"name": "solo"})
        assert created.status_code == 201, created.text
        assert (await client.get("/api/v1/beta/events")).status_code == 404


def test_a_disabled_plugin_adds_no_cli_group(main_plugins: None) -> None:
    both = Kernel.build(settings(enabled_plugins="alpha,beta"))
    assert run_cli(both, "beta", "ping") == (0, "beta pong\n")

    without_beta = Kernel.build(settings(disabled_plugins="beta"))
    code, output = run_cli(without_beta, "beta", "ping")
    assert code != 0
    assert "No such command 'beta'" in output
    assert run_cli(without_beta, "alpha", "greet", "Ann") == (0, "hello, Ann!\n")


def test_a_disabled_plugins_settings_are_not_validated(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURTYARD_ALPHA__MAX_NAME_LENGTH", "notanint")

    app = create_app(settings(disabled_plugins="alpha,beta"))
    assert without_built_ins(app.state.kernel.plugin_names) == []

    with pytest.raises(ConfigurationError) as excinfo:
        create_app(settings(enabled_plugins="alpha"))
    message = str(excinfo.value)
    assert "COURTYARD_ALPHA__MAX_NAME_LENGTH" in message
    assert "'notanint'" in message
    assert "\n" not in message


async def test_openapi_documents_only_enabled_plugins(main_plugins: None) -> None:
    both = await get_openapi(settings(enabled_plugins="alpha,beta"))
    assert {"alpha", "beta"} <= {t["name"] for t in both["tags"]}
    assert "/api/v1/alpha/items" in both["paths"]
    assert "/api/v1/beta/events" in both["paths"]
    assert both["paths"]["/api/v1/alpha/items"]["post"]["tags"] == ["alpha"]

    alpha_only = await get_openapi(settings(disabled_plugins="beta"))
    assert "alpha" in {t["name"] for t in alpha_only["tags"]}
    assert "beta" not in {t["name"] for t in alpha_only["tags"]}
    assert "/api/v1/alpha/items" in alpha_only["paths"]
    assert not [p for p in alpha_only["paths"] if p.startswith("/api/v1/beta")]

    none = await get_openapi(settings(disabled_plugins=",".join(["alpha", "beta", *BUILT_INS])))
    assert not {"alpha", "beta"} & {t["name"] for t in none["tags"]}
    assert not [p for p in none["paths"] if p.startswith("/api/v1/")]
    assert "/health/live" in none["paths"]


# -- startup failures --------------------------------------------------------------------

FAILURES = [
    pytest.param(
        ("main", "clone"),
        {},
        [
            "duplicate plugin name 'alpha'",
            "'courtyard-alpha' (courtyard_alpha:plugin)",
            "'courtyard-alpha-clone' (courtyard_alpha_clone:plugin)",
        ],
        id="duplicate-name",
    ),
    pytest.param(
        ("main",),
        {"enabled_plugins": "alpha,nope"},
        ["COURTYARD_ENABLED_PLUGINS names unknown plugin(s) 'nope'", "installed plugins: alpha"],
        id="unknown-enabled",
    ),
    pytest.param(
        ("main",),
        {"disabled_plugins": "ghost,beta"},
        ["COURTYARD_DISABLED_PLUGINS names unknown plugin(s) 'ghost'", "installed plugins: alpha"],
        id="unknown-disabled",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "orphan"},
        ["plugin 'orphan' requires 'missing', which is not installed"],
        id="missing-requirement",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "needsalpha"},
        ["plugin 'needsalpha' requires 'alpha', which is disabled", "COURTYARD_ENABLED_PLUGINS"],
        id="requirement-not-enabled",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "needsalpha,alpha", "disabled_plugins": "alpha"},
        ["plugin 'needsalpha' requires 'alpha', which is disabled", "COURTYARD_DISABLED_PLUGINS"],
        id="requirement-disabled",
    ),
    pytest.param(
        ("main",),
        {"disabled_plugins": "alpha"},
        ["plugin 'beta' requires 'alpha', which is disabled"],
        id="alpha-disabled-under-beta",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "cyclea,cycleb"},
        ["dependency cycle between plugins: cyclea -> cycleb -> cyclea"],
        id="cycle",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "stray,alpha"},
        [
            "plugin 'stray' implements hook 'nobody_declares_this', which no enabled plugin "
            "declares",
            "optionalhook=True",
        ],
        id="undeclared-hook",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "importfail"},
        [
            "plugin 'importfail' from distribution 'courtyard-broken' failed to import",
            "(courtyard_broken.importfail:plugin)",
            "ModuleNotFoundError: No module named 'courtyard_definitely_not_installed'",
        ],
        id="import-failure",
    ),
    pytest.param(
        ("main", "broken"),
        {},  # unset allow-list: every installed plugin is enabled, the broken ones too
        ["plugin 'importfail' from distribution 'courtyard-broken' failed to import"],
        id="import-failure-when-all-enabled",
    ),
    pytest.param(
        ("main", "broken"),
        {"enabled_plugins": "misnamed"},
        [
            "plugin 'othername' from distribution 'courtyard-broken' is registered under the "
            "entry point name 'misnamed'; the two must be equal"
        ],
        id="entry-point-name-mismatch",
    ),
]


@pytest.mark.parametrize(("dist_sets", "overrides", "fragments"), FAILURES)
def test_startup_failure_is_one_line_naming_the_plugins(
    use_dists: Callable[..., None],
    dist_sets: tuple[str, ...],
    overrides: dict[str, str],
    fragments: list[str],
) -> None:
    use_dists(*dist_sets)
    with pytest.raises(ConfigurationError) as excinfo:
        create_app(settings(**overrides))
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message
    assert "Traceback" not in message


def test_installed_but_disabled_broken_plugins_do_not_stop_startup(
    use_dists: Callable[..., None],
) -> None:
    use_dists("main", "broken")
    assert Kernel.build(settings(enabled_plugins="alpha,beta")).plugin_names == ["alpha", "beta"]
    broken = sorted({p.name for p in discover()} - {"alpha", "beta"})
    assert {"cyclea", "importfail", "misnamed", "orphan", "stray"} <= set(broken)
    kernel = Kernel.build(settings(disabled_plugins=",".join(broken)))
    assert kernel.plugin_names == ["alpha", "beta"]
    # Listing still shows what is wrong with them, without failing.
    errors = {item.name: error for item, _, error in kernel.installed_plugins() if error}
    assert {"importfail", "misnamed"} <= set(errors)
    assert not {"alpha", "beta"} & set(errors)
    assert "ModuleNotFoundError" in errors["importfail"]


async def test_app_with_broken_plugins_installed_but_disabled_serves(
    use_dists: Callable[..., None], app_client: Any
) -> None:
    use_dists("main", "broken")
    async with app_client(enabled_plugins="alpha,beta") as client:
        created = await client.post("/api/v1/alpha/items", json={"name": "ok"})
        assert created.status_code == 201, created.text
        events = (await client.get("/api/v1/beta/events")).json()["events"]
        assert events == [{"item_id": created.json()["id"], "name": "ok"}]
        assert (await client.get("/health/live")).status_code == 200


def test_plugin_settings_for_a_disabled_plugin_are_rejected(main_plugins: None) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        Kernel.build(settings(disabled_plugins="beta"), plugin_settings={"beta": {"x": 1}})
    assert str(excinfo.value) == "settings given for plugin(s) that are not enabled: beta"
