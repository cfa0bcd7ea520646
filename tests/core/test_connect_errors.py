"""Failing to connect to the database is an outage (503), on every path that connects, and
an OSError of the app's own is not (no server needed: the driver's connect is made to fail).

The real thing, a PostgreSQL server refusing connections while it shuts down, is in
tests/resilience/test_db_refusing_connections.py.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db.engine import create_engine
from core.db.errors import is_database_unavailable, raised_by_database
from core.errors import install_error_handlers
from tests.conftest import make_settings

# Nothing listens here; the driver never gets that far.
URL = "postgresql+asyncpg://courtyard@127.0.0.1:9/courtyard"

Connect = Callable[[AsyncEngine], AbstractAsyncContextManager[Any]]
WAYS_TO_CONNECT: dict[str, Connect] = {
    "engine.connect": lambda engine: engine.connect(),
    "engine.begin": lambda engine: engine.begin(),
}


@pytest.fixture
async def unreachable(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncEngine]:
    """The app's kind of engine, on a machine whose network cannot reach the server: the
    driver's socket connect fails with ENETUNREACH, a plain OSError."""

    async def no_route(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", no_route)
    engine = create_engine(URL, make_settings(URL, db_connect_timeout=5))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _connect_error(engine: AsyncEngine, connect: Connect) -> BaseException:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - what it is, is the question
        async with connect(engine):
            pass
    return raised.value


@pytest.mark.parametrize("way", WAYS_TO_CONNECT)
async def test_an_os_error_met_while_connecting_is_an_outage_on_every_path(
    unreachable: AsyncEngine, way: str
) -> None:
    """The socket's own failure (the driver lets it through raw) comes out as SQLAlchemy
    raises the driver's errors: a `DBAPIError` around the driver's `OperationalError`,
    the OSError kept as its cause, classified as an outage."""
    error = await _connect_error(unreachable, WAYS_TO_CONNECT[way])
    assert isinstance(error, DBAPIError), repr(error)
    assert isinstance(error.orig, unreachable.dialect.loaded_dbapi.OperationalError)
    cause = error.orig.__cause__
    assert isinstance(cause, OSError), repr(cause)
    assert cause.errno == errno.ENETUNREACH
    assert is_database_unavailable(error)
    assert raised_by_database(error)


def test_an_os_error_of_the_apps_own_is_not_an_outage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "missing.txt").read_bytes()
    assert not is_database_unavailable(missing.value)
    assert not raised_by_database(missing.value)
    with pytest.raises(OSError, match="unreachable") as unreachable:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")  # not from a driver
    assert not is_database_unavailable(unreachable.value)
    assert not raised_by_database(unreachable.value)


@pytest.mark.parametrize("way", WAYS_TO_CONNECT)
async def test_the_server_refusing_a_connection_is_a_dbapi_error_on_every_path(
    way: str,
) -> None:
    """What the server answers at connect time (here 57P03, "the database system is shutting
    down") comes out as SQLAlchemy raises it, whichever way the connection was asked for:
    a `DBAPIError` around the driver's error, classified by its SQLSTATE."""

    async def shutting_down() -> Any:
        raise asyncpg.CannotConnectNowError("the database system is shutting down")

    engine = create_async_engine(URL, async_creator=shutting_down)
    try:
        error = await _connect_error(engine, WAYS_TO_CONNECT[way])
    finally:
        await engine.dispose()
    assert isinstance(error, DBAPIError), repr(error)
    assert getattr(error.orig, "sqlstate", None) == "57P03", repr(error.orig)
    assert is_database_unavailable(error)


async def test_a_driver_os_error_is_a_503_and_the_apps_own_a_500(
    unreachable: AsyncEngine, tmp_path: Path
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/login")
    async def login() -> None:
        async with unreachable.connect():
            pass

    @app.get("/file")
    async def file() -> bytes:
        return (tmp_path / "missing.txt").read_bytes()

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        outage = await client.get("/login")
        bug = await client.get("/file")
    assert outage.status_code == 503, outage.text
    assert outage.json()["code"] == "core.database_unavailable"
    assert int(outage.headers["retry-after"]) > 0
    assert bug.status_code == 500, bug.text
