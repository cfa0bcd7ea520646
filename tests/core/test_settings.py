"""Settings: sources and their precedence, per-plugin namespaces, and one-line errors.

Every test runs in its own empty working directory (the autouse `clean_environment`
fixture), so `.env` and `courtyard.toml` are written there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from core.app import create_app
from core.kernel import Kernel
from core.settings import ConfigurationError, CoreSettings
from tests.support.distributions import without_built_ins


def write(name: str, text: str) -> Path:
    path = Path.cwd() / name
    path.write_text(text, encoding="utf-8")
    return path


def remove(name: str) -> None:
    (Path.cwd() / name).unlink()


def load_error(**overrides: Any) -> str:
    """The message of the ConfigurationError `CoreSettings.load()` raises (one line)."""
    with pytest.raises(ConfigurationError) as excinfo:
        CoreSettings.load(**overrides)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


async def get_greeting(core: CoreSettings) -> str:
    transport = httpx.ASGITransport(app=create_app(core))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/v1/alpha/greeting")
    assert response.status_code == 200, response.text
    greeting: str = response.json()["greeting"]
    return greeting


# -- per-plugin namespace ----------------------------------------------------------------


async def test_plugin_setting_from_the_environment_reaches_its_route(
    main_plugins: None, app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_client(enabled_plugins="alpha,beta", upgrade=False) as client:
        assert (await client.get("/api/v1/alpha/greeting")).json() == {"greeting": "hello"}

    monkeypatch.setenv("COURTYARD_ALPHA__GREETING", "hi")
    async with app_client(enabled_plugins="alpha,beta", upgrade=False) as client:
        response = await client.get("/api/v1/alpha/greeting")
        assert response.status_code == 200
        assert response.json() == {"greeting": "hi"}


async def test_plugin_setting_from_the_environment_is_enforced(
    main_plugins: None, app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURTYARD_ALPHA__MAX_NAME_LENGTH", "5")
    async with app_client(enabled_plugins="alpha,beta") as client:
        ok = await client.post("/api/v1/alpha/items", json={"name": "12345"})
        assert ok.status_code == 201, ok.text
        too_long = await client.post("/api/v1/alpha/items", json={"name": "123456"})
        assert too_long.status_code == 422
        assert too_long.json()["code"] == "alpha.name_too_long"


def test_a_plugin_setting_without_its_namespace_is_an_unknown_setting(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COURTYARD_GREETING is not alpha's setting (only COURTYARD_ALPHA__GREETING is): a
    misplaced name is reported rather than silently ignored."""
    monkeypatch.setenv("COURTYARD_GREETING", "wrong")
    with pytest.raises(ConfigurationError, match="unknown setting COURTYARD_GREETING"):
        Kernel.build(CoreSettings.load())
    monkeypatch.delenv("COURTYARD_GREETING")
    monkeypatch.setenv("COURTYARD_BETA__GREETING", "wrong too")
    with pytest.raises(ConfigurationError, match="plugin 'beta' has no setting 'greeting'"):
        Kernel.build(CoreSettings.load())


# -- sources and precedence ----------------------------------------------------------------

TOML = """
db_pool_size = 3
db_max_overflow = 3
ready_timeout = 3.5
log_level = "ERROR"
disabled_plugins = "beta"

[alpha]
greeting = "from-toml"
max_name_length = 7
ready = false
"""

DOTENV = """
COURTYARD_DB_POOL_SIZE=4
COURTYARD_DB_MAX_OVERFLOW=4
COURTYARD_ALPHA__GREETING=from-dotenv
COURTYARD_ALPHA__MAX_NAME_LENGTH=8
"""


async def test_sources_environment_over_dotenv_over_toml_over_defaults(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("courtyard.toml", TOML)
    write(".env", DOTENV)
    monkeypatch.setenv("COURTYARD_DB_POOL_SIZE", "5")
    monkeypatch.setenv("COURTYARD_ALPHA__GREETING", "from-env")

    core = CoreSettings.load()
    assert core.db_pool_size == 5  # environment, .env and toml
    assert core.db_max_overflow == 4  # .env and toml
    assert core.ready_timeout == 3.5  # toml only
    assert core.log_level == "ERROR"  # toml only
    assert core.db_pool_timeout == 5.0  # default
    assert core.disabled_plugins == ["beta"]  # a comma-separated string in toml too

    kernel = Kernel.build(core)
    assert without_built_ins(kernel.plugin_names) == ["alpha"]
    alpha: Any = kernel.plugin_settings["alpha"]
    assert alpha.greeting == "from-env"
    assert alpha.max_name_length == 8
    assert alpha.ready is False
    assert alpha.trust_test_header is False

    assert await get_greeting(core) == "from-env"
    monkeypatch.delenv("COURTYARD_ALPHA__GREETING")
    assert await get_greeting(CoreSettings.load()) == "from-dotenv"
    remove(".env")
    assert await get_greeting(CoreSettings.load()) == "from-toml"
    remove("courtyard.toml")
    assert await get_greeting(CoreSettings.load()) == "hello"


def test_config_file_named_by_courtyard_config_file(
    main_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("elsewhere.toml", 'log_level = "DEBUG"\n[alpha]\ngreeting = "custom"\n')
    monkeypatch.setenv("COURTYARD_CONFIG_FILE", "elsewhere.toml")
    core = CoreSettings.load()
    assert core.log_level == "DEBUG"
    assert Kernel.build(core).plugin_settings["alpha"].greeting == "custom"  # type: ignore[attr-defined]


def test_a_missing_courtyard_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicitly named config file that does not exist is a typo, not "no config"."""
    write("courtyard.toml", 'log_level = "DEBUG"\n')  # not silently used instead
    monkeypatch.setenv("COURTYARD_CONFIG_FILE", "missing.toml")
    message = load_error()
    assert "config file missing.toml does not exist" in message
    assert "COURTYARD_CONFIG_FILE" in message


def test_invalid_toml_is_one_clear_line() -> None:
    write("courtyard.toml", 'log_level = "INFO"\nthis is not toml\n')
    message = load_error()
    assert message.startswith("config file courtyard.toml is not valid TOML:")
    assert "line 2" in message


def test_invalid_plugin_setting_in_toml_names_its_variable(main_plugins: None) -> None:
    write("courtyard.toml", '[alpha]\nmax_name_length = "many"\n')
    with pytest.raises(ConfigurationError) as excinfo:
        Kernel.build(CoreSettings.load())
    message = str(excinfo.value)
    assert message.startswith("invalid configuration: COURTYARD_ALPHA__MAX_NAME_LENGTH:")
    assert "'many'" in message
    assert "\n" not in message


def test_invalid_core_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_ENV", "staging")
    monkeypatch.setenv("COURTYARD_DB_POOL_SIZE", "0")
    message = load_error()
    assert message.startswith("invalid configuration: ")
    assert "COURTYARD_ENV: Input should be 'development', 'test' or 'production'" in message
    assert "(got 'staging')" in message
    assert "COURTYARD_DB_POOL_SIZE: Input should be greater than or equal to 1" in message


# -- the production secret -----------------------------------------------------------------


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_ENV", "production")
    message = load_error()
    assert "COURTYARD_SECRET_KEY" in message
    assert "at least 32 bytes" in message
    assert "courtyard-development-secret" not in message


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("Q7" * 15 + "z", id="31-ascii-bytes"),
        pytest.param("é" * 15 + "z", id="31-bytes-in-16-characters"),
    ],
)
def test_production_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    assert len(secret.encode()) == 31
    monkeypatch.setenv("COURTYARD_ENV", "production")
    monkeypatch.setenv("COURTYARD_SECRET_KEY", secret)
    message = load_error()
    assert "COURTYARD_SECRET_KEY" in message
    assert secret not in message
    assert secret[:8] not in message


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(("Q7w-Z9k_Lp" * 4)[:32], id="32-ascii-bytes"),
        pytest.param("éèêëàâäîïôöüûùçœ", id="32-utf8-bytes"),  # 16 characters, 2 bytes each
    ],
)
def test_production_accepts_a_32_byte_secret(
    monkeypatch: pytest.MonkeyPatch, main_plugins: None, secret: str
) -> None:
    write(".env", f"COURTYARD_ENV=production\nCOURTYARD_SECRET_KEY={secret}\n")
    core = CoreSettings.load()
    assert core.env == "production"
    assert core.secret_key.get_secret_value() == secret
    assert secret not in repr(core)
    assert without_built_ins(create_app(core).state.kernel.plugin_names) == ["alpha", "beta"]


def test_a_weak_secret_is_fine_outside_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_SECRET_KEY", "short")
    assert CoreSettings.load().env == "development"


def test_the_secret_never_appears_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    # A secret of the wrong type in the config file.
    write("courtyard.toml", "secret_key = 123456789012345678901234567890123\n")
    message = load_error()
    assert "COURTYARD_SECRET_KEY" in message
    assert "123456789" not in message
    # A good secret next to another error.
    remove("courtyard.toml")
    monkeypatch.setenv("COURTYARD_SECRET_KEY", "Zq8-unique-secret-value-of-40-bytes-xxxx")
    monkeypatch.setenv("COURTYARD_DATABASE_URL", "notaurl")
    message = load_error()
    assert "COURTYARD_DATABASE_URL" in message
    assert "Zq8-unique" not in message


# -- database URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("COURTYARD_DATABASE_URL", "notaurl", "not a database URL"),
        ("COURTYARD_DATABASE_URL", "mysql://app@db/courtyard", "unsupported database 'mysql'"),
        ("COURTYARD_DATABASE_URL", "postgresql://app@db", "must name a database"),
        ("COURTYARD_READ_DATABASE_URL", "://replica", "not a database URL"),
        # Several hosts (failover): refused at start, not at the first connection.
        ("COURTYARD_DATABASE_URL", "postgresql://app@/db?host=a&host=b:5432", "needs its port"),
        ("COURTYARD_DATABASE_URL", "postgresql://app@/db?host=a,b&port=5432", "port for each"),
        ("COURTYARD_DATABASE_URL", "postgresql://app@/db?host=a:1:2&host=b:2", "needs its port"),
        ("COURTYARD_DATABASE_URL", "postgresql://app@x/db?host=a:1&host=b:2", "not both"),
        (
            "COURTYARD_DATABASE_URL",
            "postgresql://app@db/db?target_session_attrs=writable",
            "target_session_attrs='writable' is not one of",
        ),
    ],
)
def test_malformed_database_url_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = load_error()
    assert message.startswith(f"invalid configuration: {variable}: ")
    assert fragment in message
    assert "Traceback" not in message


def test_a_database_password_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_DATABASE_URL", "postgresql://app:hunter2pw@db.internal/")
    message = load_error()
    assert "COURTYARD_DATABASE_URL" in message
    assert "must name a database" in message
    assert "hunter2pw" not in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://app:p%40ss@db:5432/courtyard",
            "postgresql+asyncpg://app:p%40ss@db:5432/courtyard",
        ),
        ("postgresql://app@db/courtyard", "postgresql+asyncpg://app@db/courtyard"),
        ("postgresql+psycopg2://app@db/courtyard", "postgresql+asyncpg://app@db/courtyard"),
        ("postgresql+asyncpg://app@db/courtyard", "postgresql+asyncpg://app@db/courtyard"),
        (
            "postgresql://app@/courtyard?host=db1:5432&host=db2:5432&target_session_attrs=read-write",
            "postgresql+asyncpg://app@/courtyard?host=db1%3A5432&host=db2%3A5432"
            "&target_session_attrs=read-write",
        ),
        ("sqlite:///./courtyard.db", "sqlite+aiosqlite:///./courtyard.db"),
        ("sqlite:////var/lib/courtyard.db", "sqlite+aiosqlite:////var/lib/courtyard.db"),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("COURTYARD_DATABASE_URL", given)
    monkeypatch.setenv("COURTYARD_READ_DATABASE_URL", given)
    core = CoreSettings.load()
    assert core.database_url == expected
    assert core.read_database_url == expected


def test_an_empty_read_database_url_means_use_the_primary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURTYARD_READ_DATABASE_URL", "")
    assert CoreSettings.load().read_database_url is None
