"""Where the failed-login counters live: auth's own COURTYARD_AUTH__RATE_LIMIT_STORAGE when
given, else the instances' shared COURTYARD_REDIS_URL when set, else this process's memory.
Building the counters opens no connection, so no Redis is needed here."""

from __future__ import annotations

from typing import Any

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage

from core.kernel import Kernel
from tests.conftest import make_settings

PLUGINS = "user,auth,mail"
SHARED = "redis://cache.internal:6379/2"


def counters(auth: dict[str, Any] | None = None, **core: Any) -> tuple[str, object]:
    """The storage URL auth's container chose, and the storage it built."""
    settings = make_settings("sqlite+aiosqlite:///:memory:", enabled_plugins=PLUGINS, **core)
    kernel = Kernel.build(settings, plugin_settings={"auth": auth or {}})
    container = kernel.container_of("auth")
    return container.rate_limit_storage(), container.rate_limits().storage


def test_alone_an_instance_counts_in_memory() -> None:
    url, storage = counters()
    assert url == "memory://"
    assert isinstance(storage, MemoryStorage)


def test_the_shared_redis_is_used_when_set() -> None:
    url, storage = counters(redis_url=SHARED)
    assert url == SHARED
    assert isinstance(storage, RedisStorage)


@pytest.mark.parametrize("own", ["memory://", "redis://limits.internal:6379/5"])
def test_auths_own_storage_wins_when_given(own: str) -> None:
    url, _ = counters({"rate_limit_storage": own}, redis_url=SHARED)
    assert url == own


def test_auths_own_storage_wins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_AUTH__RATE_LIMIT_STORAGE", "memory://")
    url, storage = counters(redis_url=SHARED)
    assert url == "memory://"
    assert isinstance(storage, MemoryStorage)


def test_an_empty_storage_of_auths_own_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """As an empty COURTYARD_REDIS_URL does: the shared Redis, else memory."""
    monkeypatch.setenv("COURTYARD_AUTH__RATE_LIMIT_STORAGE", "")
    assert counters(redis_url=SHARED)[0] == SHARED
    assert counters()[0] == "memory://"
