"""Hardening: authenticators in plugin order, clashes between plugins, configuration
typos, secrets in messages, HTTP edge cases and sessions given back.

Everything runs against the installed test plugins and real databases (SQLite, and
PostgreSQL when COURTYARD_TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from ulid import ULID

from core.app import create_app
from core.kernel import Kernel
from core.settings import ConfigurationError, CoreSettings
from tests.conftest import make_settings, migrate, running
from tests.support.courtyard_cli import run_courtyard
from tests.support.databases import PG_ENV, backends, fresh_database
from tests.support.distributions import without_built_ins
from tests.support.problems import assert_problem

ITEMS = "/api/v1/alpha/items"
WHOAMI = "/api/v1/alpha/whoami"


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'courtyard.db'}"


def write(name: str, text: str) -> None:
    (Path.cwd() / name).write_text(text, encoding="utf-8")


def assert_one_line_cli_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("courtyard: error: "), result.stderr
    return lines[0]


# -- authenticators: plugin order, async ones awaited ------------------------------------------


@pytest.fixture
def whoami(main_plugins: None, tmp_path: Path) -> Callable[..., Any]:
    """`await whoami(headers, enabled=...)`: GET /whoami on an app with alpha's test header on."""

    async def get(headers: dict[str, str], *, enabled: str = "alpha,beta") -> httpx.Response:
        app = create_app(
            make_settings(sqlite_url(tmp_path), enabled_plugins=enabled),
            plugin_settings={"alpha": {"trust_test_header": True}},
        )
        async with running(app) as client:
            return await client.get(WHOAMI, headers=headers)

    return get


async def test_an_async_authenticator_is_awaited(whoami: Callable[..., Any]) -> None:
    response = await whoami({"x-beta-user": "usr_b"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_b", "roles": ["beta"]}


async def test_authenticators_are_asked_in_plugin_order(whoami: Callable[..., Any]) -> None:
    response = await whoami({"x-test-user": "usr_a:admin", "x-beta-user": "usr_b"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_a", "roles": ["admin"]}  # alpha comes first


async def test_nobody_recognised_by_any_authenticator_is_401(whoami: Callable[..., Any]) -> None:
    response = await whoami({})
    assert_problem(response, 401, "core.unauthorized")


async def test_a_disabled_plugins_authenticator_is_not_asked(whoami: Callable[..., Any]) -> None:
    response = await whoami({"x-beta-user": "usr_b"}, enabled="alpha")
    assert_problem(response, 401, "core.unauthorized")


# -- two plugins claiming the same name ---------------------------------------------------------


def test_two_plugins_registering_the_same_command_group_is_one_line(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    result = run_courtyard(
        "plugins",
        cwd=tmp_path,
        pythonpath=[dists["main"], dists["broken"]],
        env={
            "COURTYARD_DATABASE_URL": sqlite_url(tmp_path),
            "COURTYARD_ENABLED_PLUGINS": "alpha,dupcmd",
        },
    )
    line = assert_one_line_cli_error(result)
    assert line == (
        "courtyard: error: plugins 'alpha' and 'dupcmd' both register the command group 'alpha'"
    )


def test_two_plugins_mounting_routes_at_the_same_prefix_stop_startup(
    use_dists: Callable[..., None], tmp_path: Path
) -> None:
    use_dists("main", "broken")
    with pytest.raises(ConfigurationError) as caught:
        create_app(make_settings(sqlite_url(tmp_path), enabled_plugins="alpha,prefixclash"))
    assert str(caught.value) == (
        "plugins 'alpha' and 'prefixclash' both mount routes at /api/v1/alpha"
    )


# -- configuration typos are errors -------------------------------------------------------------


def build_error() -> str:
    """The one-line ConfigurationError that reading and applying the configuration raises."""
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(CoreSettings.load())
    message = str(caught.value)
    assert "\n" not in message
    return message


def build() -> Kernel:
    return Kernel.build(CoreSettings.load())


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        pytest.param(
            'databse_url = "x"\n', "courtyard.toml: unknown setting 'databse_url'", id="core-key"
        ),
        pytest.param(
            "[nottes]\nx = 1\n",
            "courtyard.toml: table [nottes] names no installed plugin",
            id="table",
        ),
        pytest.param(
            '[alpha]\ngreting = "x"\n',
            "courtyard.toml: unknown setting 'greting' in [alpha]",
            id="plugin-key",
        ),
    ],
)
def test_a_typo_in_courtyard_toml_is_an_error(main_plugins: None, toml: str, fragment: str) -> None:
    write("courtyard.toml", toml)
    assert fragment in build_error()


def test_a_typo_in_a_disabled_plugins_table_is_not_an_error(main_plugins: None) -> None:
    write("courtyard.toml", 'disabled_plugins = "alpha,beta"\n[alpha]\ngreting = "x"\n')
    assert without_built_ins(build().plugin_names) == []


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("COURTYARD_DATABSE_URL", id="core"),
        pytest.param("COURTYARD_ALPHA__GRETING", id="plugin"),
    ],
)
def test_a_typo_in_the_environment_is_an_error(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "x")
    assert f"unknown setting {variable}" in build_error()


def test_a_typo_in_dotenv_is_an_error(main_plugins: None) -> None:
    write(".env", "COURTYARD_DATABSE_URL=x\n")
    assert "unknown setting COURTYARD_DATABSE_URL" in build_error()


@pytest.mark.parametrize(
    ("variable", "enabled"),
    [
        pytest.param("COURTYARD_ALPHA__GRETING", [], id="disabled-plugin"),
        pytest.param("COURTYARD_NOTINSTALLED__X", ["alpha", "beta"], id="plugin-not-installed"),
        pytest.param("COURTYARD_TEST_ANYTHING", ["alpha", "beta"], id="test-variable"),
    ],
)
def test_variables_nothing_enabled_reads_are_ignored(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch, variable: str, enabled: list[str]
) -> None:
    if not enabled:
        monkeypatch.setenv("COURTYARD_DISABLED_PLUGINS", "alpha,beta")
    monkeypatch.setenv(variable, "1")
    assert without_built_ins(build().plugin_names) == enabled


def test_courtyard_config_file_is_a_known_variable(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("elsewhere.toml", '[alpha]\ngreeting = "from elsewhere"\n')
    monkeypatch.setenv("COURTYARD_CONFIG_FILE", "elsewhere.toml")
    assert build().plugin_settings["alpha"].greeting == "from elsewhere"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("toml", "env", "fragment"),
    [
        pytest.param(
            'databse_url = "x"\n', {}, "courtyard.toml: unknown setting 'databse_url'", id="toml"
        ),
        pytest.param(
            "",
            {"COURTYARD_ALPHA__GRETING": "x"},
            "unknown setting COURTYARD_ALPHA__GRETING",
            id="environment",
        ),
    ],
)
def test_the_cli_reports_a_configuration_typo_in_one_line(
    dists: dict[str, Path], tmp_path: Path, toml: str, env: dict[str, str], fragment: str
) -> None:
    (tmp_path / "courtyard.toml").write_text(toml, encoding="utf-8")
    result = run_courtyard(
        "plugins",
        cwd=tmp_path,
        pythonpath=[dists["main"]],
        env={"COURTYARD_DATABASE_URL": sqlite_url(tmp_path), **env},
    )
    assert fragment in assert_one_line_cli_error(result)


# -- secrets are never echoed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "leaks"),
    [
        pytest.param("postgresql://app:p/ss@host", ["p/ss", "ss@host"], id="slash"),
        pytest.param("postgresql://app:p@ss@host", ["p@ss", "ss@host"], id="at-sign"),
    ],
)
def test_a_database_password_is_not_echoed_in_errors(
    monkeypatch: pytest.MonkeyPatch, url: str, leaks: list[str]
) -> None:
    monkeypatch.setenv("COURTYARD_DATABASE_URL", url)  # no database named: invalid
    with pytest.raises(ConfigurationError) as caught:
        CoreSettings.load()
    message = str(caught.value)
    assert "COURTYARD_DATABASE_URL" in message
    for leak in leaks:
        assert leak not in message


def test_the_repr_of_settings_hides_the_database_password() -> None:
    settings = CoreSettings(database_url="postgresql://app:hunter2@h/db")
    assert "hunter2" not in repr(settings)


# -- HTTP edge cases ----------------------------------------------------------------------------


@pytest.fixture
async def http(main_plugins: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A migrated app with alpha on SQLite: these requests are refused before any query."""
    settings = make_settings(sqlite_url(tmp_path), enabled_plugins="alpha")
    await migrate(settings)
    async with running(create_app(settings)) as client:
        yield client


async def test_405_allow_lists_every_method_of_the_path(http: httpx.AsyncClient) -> None:
    response = await http.put(ITEMS, json={"name": "x"})
    assert_problem(response, 405, "core.method_not_allowed")
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "PUT" not in allowed


@pytest.mark.parametrize(
    "length",
    [
        pytest.param("²".encode("latin-1"), id="superscript-two-latin1"),
        pytest.param("²".encode(), id="superscript-two-utf8"),
        pytest.param("١٢".encode(), id="arabic-indic-digits"),
        pytest.param(b"12a", id="trailing-letter"),
        pytest.param(b"-1", id="negative"),
        pytest.param(b"+12", id="plus-sign"),
    ],
)
async def test_a_content_length_that_is_not_digits_is_400(
    http: httpx.AsyncClient, length: bytes
) -> None:
    body = b'{"name": "x"}'
    response = await http.post(
        ITEMS,
        content=body,
        headers=[(b"content-type", b"application/json"), (b"content-length", length)],
    )
    assert (b"content-length", length) in response.request.headers.raw  # sent as given
    problem = assert_problem(response, 400, "core.bad_request")
    assert "content-length" in problem["detail"].lower()


async def test_invalid_json_is_a_422_on_the_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        ITEMS, content=b'{"name": ', headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "core.validation_error")
    assert problem["errors"][0]["field"] == "body", problem


# -- every request gives its database sessions back ---------------------------------------------


@pytest.fixture
async def replica_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second, separate, migrated database on the same backend as `database_url`."""
    folder = tmp_path / "replica"
    folder.mkdir()
    async with fresh_database(make_url(database_url).get_backend_name(), folder) as url:
        await migrate(make_settings(url, enabled_plugins="alpha"))
        yield url


@pytest.mark.parametrize("with_replica", [False, True], ids=["primary-only", "replica"])
async def test_every_request_gives_its_sessions_back(
    main_plugins: None, app_client: Any, replica_url: str, with_replica: bool
) -> None:
    missing = f"{ITEMS}/alp_{ULID()}"
    overrides = {"read_database_url": replica_url} if with_replica else {}
    async with app_client(enabled_plugins="alpha", **overrides) as client:
        database = client.app.state.database
        assert database.has_replica is with_replica
        for n in range(3):
            assert (await client.post(ITEMS, json={"name": f"ok-{n}"})).status_code == 201
            assert (await client.post(ITEMS, json={"name": "x" * 99})).status_code == 422
            assert (await client.post(ITEMS, json={"nom": "x"})).status_code == 422
            assert (await client.get(missing)).status_code == 404
            assert (await client.delete(missing)).status_code == 404
            assert (await client.get(f"{ITEMS}?limit=0")).status_code == 422
            assert (await client.get("/api/v1/alpha/boom")).status_code == 500
            assert (await client.get(ITEMS)).status_code == 200
        # Both engines were used, and every connection is back in its pool.
        assert database.write_engine.pool.checkedin() >= 1
        assert database.read_engine.pool.checkedin() >= 1
        assert database.write_engine.pool.checkedout() == 0
        assert database.read_engine.pool.checkedout() == 0


# -- PostgreSQL: a database that does not exist -------------------------------------------------

if "postgresql" in backends():

    @pytest.mark.postgres
    async def test_a_database_that_does_not_exist_is_503_not_500(main_plugins: None) -> None:
        url = make_url(os.environ[PG_ENV]).set(
            drivername="postgresql+asyncpg", database=f"courtyard_missing_{uuid.uuid4().hex[:12]}"
        )
        settings = make_settings(url.render_as_string(hide_password=False), enabled_plugins="alpha")
        async with running(create_app(settings)) as client:
            response = await asyncio.wait_for(client.get(ITEMS), timeout=15)
        assert_problem(response, 503, "core.database_unavailable")
        assert int(response.headers["retry-after"]) > 0


def test_an_invalid_secret_plugin_setting_is_named_but_never_echoed(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURTYARD_ALPHA__SIGNING_MATERIAL", "tooshort-7d3f")
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(CoreSettings.load(enabled_plugins="alpha"))
    message = str(caught.value)
    assert "COURTYARD_ALPHA__SIGNING_MATERIAL" in message
    assert "tooshort-7d3f" not in message
    assert "\n" not in message
