"""A problem's `instance` is the path the client sent, not its percent-decoded form.

Decoding would put control characters (`%0A`, `%00`) into the body and make `%2F` a path
separator; the query string is never part of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.app import create_app
from tests.conftest import make_settings, migrate, running
from tests.support.problems import assert_problem

ITEMS = "/api/v1/alpha/items"


@pytest.fixture
async def http(main_plugins: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A migrated app with alpha on SQLite (no query runs before these errors)."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'http.db'}", enabled_plugins="alpha")
    await migrate(settings)
    async with running(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("sent", "instance"),
    [
        pytest.param("/api/v1/nowhere/%0A%0Dx%00", "/api/v1/nowhere/%0A%0Dx%00", id="control"),
        pytest.param("/api/v1/nowhere/a%2Fb", "/api/v1/nowhere/a%2Fb", id="encoded-slash"),
        pytest.param("/api/v1/nowhere/caf%C3%A9?q=%0A", "/api/v1/nowhere/caf%C3%A9", id="query"),
    ],
)
async def test_a_404_names_the_path_as_sent(
    http: httpx.AsyncClient, sent: str, instance: str
) -> None:
    body = assert_problem(await http.get(sent), 404, "core.not_found", instance=instance)
    assert body["detail"] == f"No resource at {instance}"
    assert not any(ord(c) < 32 for c in body["instance"] + body["detail"]), body


async def test_a_405_names_the_path_as_sent(http: httpx.AsyncClient) -> None:
    sent = f"{ITEMS}/%0Aitem"
    response = await http.put(sent, json={"name": "x"})
    body = assert_problem(response, 405, "core.method_not_allowed", instance=sent)
    assert body["detail"] == f"Method PUT is not allowed on {sent}"


async def test_a_422_from_a_route_has_the_path_without_the_query(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(f"{ITEMS}?limit=%0A")
    assert_problem(response, 422, "core.validation_error", instance=ITEMS)


async def test_an_error_raised_by_a_service_names_the_path_as_sent(
    http: httpx.AsyncClient,
) -> None:
    sent = f"{ITEMS}/alp_%0A%00?verbose=1"
    response = await http.get(sent)
    assert_problem(response, 404, "alpha.not_found", instance=f"{ITEMS}/alp_%0A%00")
