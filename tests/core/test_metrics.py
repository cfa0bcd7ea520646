"""`GET /metrics` (COURTYARD_METRICS): what a Prometheus scrape reads after known requests,
the database pools, a plugin's own metrics, and nothing at all when it is off. Scrapes are
read with prometheus_client's own parser of the text format."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.app import create_app
from core.settings import ConfigurationError
from core.testing.databases import backends
from tests.conftest import AppFactory, make_settings
from tests.plugins.auth.conftest import NEW_PASSWORD, AuthApp
from tests.support.courtyard_cli import PROJECT_ROOT
from tests.support.observers import install_observers
from tests.support.problems import assert_problem

PLUGINS = "user,auth,mail"
REQUESTS = "courtyard_http_requests_total"
DURATIONS = "courtyard_http_request_duration_seconds_count"
USER_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
SAFETY_NET = 10  # seconds


class Scrape:
    """One scrape of `/metrics`, its samples by name and labels."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def labels_of(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for sample, labels in self.samples if sample == name}


async def scrape(client: httpx.AsyncClient) -> Scrape:
    return Scrape(await client.get("/metrics"))


@pytest.fixture(scope="module")
def observers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_observers(tmp_path_factory.mktemp("observers"))


# Off by default


async def test_metrics_are_off_by_default(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins=PLUGINS) as client:
        response = await client.get("/metrics")
        schema = (await client.get("/openapi.json")).json()

    assert_problem(response, 404, "core.not_found")
    assert "/metrics" not in schema["paths"]


@pytest.mark.parametrize(("metrics", "loaded"), [("false", False), ("true", True)])
def test_prometheus_client_is_imported_only_with_metrics_on(
    tmp_path: Path, metrics: str, loaded: bool
) -> None:
    """Off, an app costs nothing for metrics: not even the import (a fresh interpreter,
    the built-in plugins enabled, the app built as a server builds it)."""
    script = (
        "import sys\n"
        "from core.app import create_app\n"
        "create_app()\n"
        "print(any(name.split('.')[0] == 'prometheus_client' for name in sys.modules))\n"
    )
    env = {
        "PYTHONPATH": str(PROJECT_ROOT),
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}",
        "COURTYARD_METRICS": metrics,
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(loaded)


# Requests


async def test_requests_are_counted_by_route_template_method_and_status(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, metrics=True) as client:
        for _ in range(2):
            assert (await client.get("/api/v1/users/me")).status_code == 401
        assert (await client.get(f"/api/v1/users/{USER_ID}")).status_code == 401
        assert (await client.get("/no/such/page")).status_code == 404
        assert (await client.post("/health/live")).status_code == 405
        assert (await client.request("BREW", "/health/live")).status_code == 405
        scraped = await scrape(client)
        schema = (await client.get("/openapi.json")).json()

    assert scraped.value(REQUESTS, method="GET", route="/api/v1/users/me", status="401") == 2
    assert scraped.value(REQUESTS, method="GET", route="/api/v1/users/{user_id}", status="401") == 1
    assert scraped.value(REQUESTS, method="GET", route="unmatched", status="404") == 1
    assert scraped.value(REQUESTS, method="POST", route="/health/live", status="405") == 1
    assert scraped.value(REQUESTS, method="other", route="/health/live", status="405") == 1
    # Label values are templates, never what a client typed.
    routes = scraped.labels_of(REQUESTS, "route")
    assert not [route for route in routes if USER_ID in route or "no/such" in route], routes
    assert scraped.value(DURATIONS, method="GET", route="/api/v1/users/me") == 2
    assert scraped.value(DURATIONS, method="GET", route="/api/v1/users/{user_id}") == 1
    assert "/metrics" not in schema["paths"]


async def test_the_api_docs_and_their_files_are_counted_by_their_own_templates(
    app_client: AppFactory,
) -> None:
    """The schema, the docs pages and the files they load are routes of the app (plain
    Starlette ones, which FastAPI does not name in the request): each is counted under its
    template, and only a path no route matches is `unmatched`."""
    async with app_client(enabled_plugins="user", metrics=True) as client:
        for path, status in [
            ("/openapi.json", 200),
            ("/docs", 200),
            ("/docs", 200),
            ("/redoc", 200),
            ("/docs/oauth2-redirect", 200),
            ("/docs/assets/swagger-ui.css", 200),
            ("/docs/assets/redoc.standalone.js", 200),
            ("/docs/assets/no-such-file.js", 404),
            ("/docs/nothing-here", 404),
        ]:
            assert (await client.get(path)).status_code == status, path
        assert (await client.post("/docs")).status_code == 405
        scraped = await scrape(client)

    get = {"method": "GET", "status": "200"}
    assert scraped.value(REQUESTS, route="/openapi.json", **get) == 1
    assert scraped.value(REQUESTS, route="/docs", **get) == 2
    assert scraped.value(REQUESTS, route="/redoc", **get) == 1
    assert scraped.value(REQUESTS, route="/docs/oauth2-redirect", **get) == 1
    assert scraped.value(REQUESTS, route="/docs/assets/{path}", **get) == 2
    assert scraped.value(REQUESTS, method="GET", route="/docs/assets/{path}", status="404") == 1
    assert scraped.value(REQUESTS, method="POST", route="/docs", status="405") == 1
    # Only the path no route matches: unmatched is a 404, and nothing else is.
    assert scraped.value(REQUESTS, method="GET", route="unmatched", status="404") == 1
    assert [
        dict(labels)
        for name, labels in scraped.samples
        if name == REQUESTS and dict(labels)["route"] == "unmatched"
    ] == [{"method": "GET", "route": "unmatched", "status": "404"}]


async def test_the_scrape_itself_and_every_later_request_are_counted(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins="user", metrics=True) as client:
        first = await scrape(client)
        await client.get("/health/live")
        second = await scrape(client)

    assert first.value(REQUESTS, method="GET", route="/metrics", status="200") is None
    assert second.value(REQUESTS, method="GET", route="/metrics", status="200") == 1
    assert second.value(REQUESTS, method="GET", route="/health/live", status="200") == 1
    assert second.value("process_resident_memory_bytes") is not None  # standard collectors
    assert second.value("python_info", **_python_info(second)) == 1


def _python_info(scraped: Scrape) -> dict[str, str]:
    [labels] = [dict(labels) for name, labels in scraped.samples if name == "python_info"]
    return labels


async def test_each_app_keeps_its_own_numbers(app_client: AppFactory) -> None:
    """Apps built in one process (as tests and tools do) never share a registry."""
    async with (
        app_client(enabled_plugins="user", metrics=True) as one,
        app_client(enabled_plugins="user", metrics=True) as other,
    ):
        for _ in range(3):
            await one.get("/health/live")
        await other.get("/health/live")
        seen_by_one, seen_by_other = await scrape(one), await scrape(other)

    assert seen_by_one.value(REQUESTS, method="GET", route="/health/live", status="200") == 3
    assert seen_by_other.value(REQUESTS, method="GET", route="/health/live", status="200") == 1


# The failed-login throttle (the auth plugin's own metric)


async def test_a_throttled_sign_in_is_counted(app_client: AppFactory) -> None:
    settings = {"auth": {"login_limit_per_account": "2/minute"}}
    async with app_client(enabled_plugins=PLUGINS, metrics=True, plugin_settings=settings) as (
        client
    ):
        auth = AuthApp(client)
        await auth.signup("guessed@example.com")
        before = await scrape(client)
        for _ in range(2):
            assert (await auth.login("guessed@example.com", NEW_PASSWORD)).status_code == 401
        throttled = await auth.login("guessed@example.com", NEW_PASSWORD)
        after = await scrape(client)

    assert_problem(throttled, 429, "auth.too_many_attempts")
    name = "courtyard_auth_sign_ins_throttled_total"
    assert before.value(name, limit="account") == 0
    assert after.value(name, limit="account") == 1
    assert after.value(name, limit="ip") == 0
    assert after.value(REQUESTS, method="POST", route="/api/v1/auth/login", status="429") == 1


# The database pools


async def test_pool_connections_in_use_are_read_at_scrape_time(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins="user", metrics=True) as client:
        engine = client.app.state.database.write_engine  # type: ignore[attr-defined]
        async with engine.connect() as held:
            await held.execute(select(1))
            holding = await scrape(client)
        released = await scrape(client)

    in_use, idle = "courtyard_db_pool_connections_in_use", "courtyard_db_pool_connections_idle"
    assert holding.value(in_use, engine="primary") == 1
    assert released.value(in_use, engine="primary") == 0
    assert (released.value(idle, engine="primary") or 0) >= 1
    assert holding.labels_of(in_use, "engine") == {"primary"}  # no replica configured


@pytest.mark.parametrize(
    "database_url", [b for b in backends() if b == "postgresql"], indirect=True
)
async def test_callers_waiting_for_a_connection_are_counted(app_client: AppFactory) -> None:
    """PostgreSQL's pool (core/db/pool.py) counts its waiting callers: with one connection
    held, a second caller waits, and the scrape says so."""
    waiting = "courtyard_db_pool_checkouts_waiting"
    async with app_client(
        enabled_plugins="user", metrics=True, db_pool_size=1, db_max_overflow=0
    ) as client:
        engine = client.app.state.database.write_engine  # type: ignore[attr-defined]
        release = asyncio.Event()

        async def hold() -> None:
            async with engine.connect() as connection:
                await connection.execute(select(1))
                await release.wait()

        holder = asyncio.create_task(hold())
        await _until(lambda: engine.pool.checkedout() == 1)
        waiter = asyncio.create_task(_connect_once(engine))
        await _until(lambda: engine.pool.checkouts_under_way == 1)
        while_waiting = await scrape(client)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, waiter), SAFETY_NET)
        after = await scrape(client)

    assert while_waiting.value(waiting, engine="primary") == 1
    assert while_waiting.value("courtyard_db_pool_connections_in_use", engine="primary") == 1
    assert after.value(waiting, engine="primary") == 0


async def _connect_once(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(select(1))


async def _until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until `condition` holds (what it reads has no event to wait on)."""
    async with asyncio.timeout(SAFETY_NET):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


# A plugin's own metrics (the register_metrics hook)


async def test_a_plugins_collectors_are_scraped(
    monkeypatch: pytest.MonkeyPatch, observers: Path, app_client: AppFactory
) -> None:
    monkeypatch.syspath_prepend(str(observers))
    async with app_client(enabled_plugins="counting", metrics=True) as client:
        scraped = await scrape(client)

    assert scraped.value("courtyard_counting_things_total") == 3


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (
            "badmetrics",
            "plugin 'badmetrics': register_metrics returned a int, not a Prometheus "
            "collector (an object with a collect() method)",
        ),
        (
            "clashing",
            "plugin 'clashing': register_metrics: DuplicateTimeseries: Duplicated timeseries in "
            "CollectorRegistry: ",
        ),
        (
            "brokenmetrics",
            "plugin 'brokenmetrics': register_metrics: RuntimeError: the sensor is away since noon",
        ),
    ],
)
def test_a_plugins_wrong_collector_stops_the_build_naming_plugin_and_hook(
    monkeypatch: pytest.MonkeyPatch, observers: Path, database_url: str, plugin: str, message: str
) -> None:
    monkeypatch.syspath_prepend(str(observers))
    with pytest.raises(ConfigurationError) as caught:
        create_app(make_settings(database_url, enabled_plugins=plugin, metrics=True))
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)

    # With metrics off the hook is never called: the same plugin is no obstacle.
    create_app(make_settings(database_url, enabled_plugins=plugin))
