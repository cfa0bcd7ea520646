"""The settings of several instances sharing state: COURTYARD_REDIS_URL, the replica's
COURTYARD_DB_REPLICA_MAX_LAG and COURTYARD_DB_REPLICA_WAIT, and COURTYARD_SHUTDOWN_DRAIN's
bounds."""

from __future__ import annotations

import pytest

from core.settings import ConfigurationError, CoreSettings


def test_the_defaults() -> None:
    settings = CoreSettings.load(env_file=None)
    assert settings.redis_url is None
    assert settings.db_replica_max_lag == 10
    assert settings.db_replica_wait == 0.5


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/13", "rediss://app:pw@cache.internal/0"])
def test_a_redis_url_is_taken(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("COURTYARD_REDIS_URL", url)
    assert CoreSettings.load(env_file=None).redis_url == url


def test_an_empty_redis_url_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_REDIS_URL", "")
    assert CoreSettings.load(env_file=None).redis_url is None


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "http://cache:6379",
        "redis://",
        "redis://cache:port/0",
        "cache:6379",
        "redis://cache:6379/abc",  # redis-py would silently use database 0
        "redis://cache:6379/1/2",
    ],
)
def test_a_bad_redis_url_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("COURTYARD_REDIS_URL", url)
    with pytest.raises(ConfigurationError) as caught:
        CoreSettings.load(env_file=None)
    message = str(caught.value)
    assert "\n" not in message
    assert "COURTYARD_REDIS_URL: expected redis://host:port/db or rediss://" in message


def test_the_redis_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_REDIS_URL", "rediss://app:hunter2-secret@cache.internal/0")
    assert "hunter2" not in repr(CoreSettings.load(env_file=None))
    for bad in ("https://app:hunter2-secret@cache.internal/0", "redis://app:hunter2@cache/x"):
        monkeypatch.setenv("COURTYARD_REDIS_URL", bad)
        with pytest.raises(ConfigurationError) as caught:
            CoreSettings.load(env_file=None)
        assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url", ["redis://cache", "redis://cache:6379/", "rediss://cache/15"])
def test_a_redis_url_names_a_database_by_number_or_not_at_all(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("COURTYARD_REDIS_URL", url)
    assert CoreSettings.load(env_file=None).redis_url == url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COURTYARD_DB_REPLICA_MAX_LAG", "0"),
        ("COURTYARD_DB_REPLICA_MAX_LAG", "soon"),
        ("COURTYARD_DB_REPLICA_MAX_LAG", "inf"),
        ("COURTYARD_DB_REPLICA_MAX_LAG", "nan"),
        ("COURTYARD_DB_REPLICA_MAX_LAG", "1e9"),
        ("COURTYARD_DB_REPLICA_WAIT", "-1"),
        ("COURTYARD_DB_REPLICA_WAIT", "inf"),
        ("COURTYARD_DB_REPLICA_WAIT", "nan"),
        ("COURTYARD_DB_REPLICA_WAIT", "1e9"),
        ("COURTYARD_SHUTDOWN_DRAIN", "inf"),
        ("COURTYARD_SHUTDOWN_DRAIN", "nan"),
    ],
)
def test_bad_seconds_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        CoreSettings.load(env_file=None)
    assert "\n" not in str(caught.value)
    assert f"{variable}:" in str(caught.value)
