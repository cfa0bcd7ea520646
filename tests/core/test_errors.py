"""Every error is an RFC 9457 problem response with a request id.

Driven through the real app and the installed `alpha` test plugin. Errors that involve the
database run on every backend (`client`); the HTTP layer's own errors on SQLite (`http`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from ulid import ULID

from core.app import create_app
from core.logging import LOG_FORMAT, RequestIdFilter
from tests.conftest import make_settings, migrate, running
from tests.support.problems import SANE_REQUEST_ID, assert_problem

# Only `alpha`: `beta` stays installed but disabled, as on a real deployment.
PLUGINS = "alpha"
LIMIT = 1024
ITEMS = "/api/v1/alpha/items"


@pytest.fixture
async def client(main_plugins: None, app_client) -> AsyncIterator[httpx.AsyncClient]:
    """A migrated app on each database backend."""
    async with app_client(enabled_plugins=PLUGINS, max_request_body=LIMIT) as client:
        yield client


@pytest.fixture
async def http(main_plugins: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A migrated app on SQLite only, for the HTTP layer: what it does is the same whatever
    the database (it rejects these requests before any query)."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'http.db'}",
        enabled_plugins=PLUGINS,
        max_request_body=LIMIT,
    )
    await migrate(settings)
    async with running(create_app(settings)) as client:
        yield client


def json_body(size: int, name: str = "padded") -> bytes:
    """A valid item JSON document padded with whitespace to exactly `size` bytes."""
    core = f'{{"name": "{name}"}}'.encode()
    assert len(core) <= size
    return core[:-1] + b" " * (size - len(core)) + b"}"


async def chunks(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def item_names(client: httpx.AsyncClient) -> list[str]:
    response = await client.get(ITEMS, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


# -- 404 / 405 ---------------------------------------------------------------------------------


async def test_unknown_route_is_a_404_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/nowhere/at-all")
    body = assert_problem(response, 404, "core.not_found")
    assert body["instance"] == "/api/v1/nowhere/at-all"


async def test_wrong_method_is_a_405_problem_with_allow(http: httpx.AsyncClient) -> None:
    response = await http.put(ITEMS, json={"name": "x"})
    body = assert_problem(response, 405, "core.method_not_allowed")
    assert "PUT" in body["detail"]
    assert response.headers.get("allow"), response.headers
    assert "PUT" not in response.headers["allow"]


# -- 422 validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "payload", "field", "error_type"),
    [
        pytest.param("POST", ITEMS, {"name": 123}, "name", "string_type", id="wrong-type"),
        pytest.param(
            "POST", ITEMS, {"name": "ok", "colour": "red"}, "colour", "extra_forbidden", id="extra"
        ),
        pytest.param("POST", ITEMS, {}, "name", "missing", id="missing"),
        pytest.param("POST", ITEMS, {"name": ""}, "name", "string_too_short", id="empty-name"),
        pytest.param("GET", f"{ITEMS}?limit=0", None, "limit", None, id="limit-0"),
        pytest.param("GET", f"{ITEMS}?limit=101", None, "limit", None, id="limit-101"),
        pytest.param("GET", f"{ITEMS}?limit=abc", None, "limit", None, id="limit-abc"),
        pytest.param("GET", f"{ITEMS}?cursor=garbage", None, "cursor", None, id="cursor"),
        pytest.param(
            "GET", f"{ITEMS}?cursor=alp_{ULID()}%0A", None, "cursor", None, id="cursor-newline"
        ),
    ],
)
async def test_validation_errors_name_the_field(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    payload: dict[str, object] | None,
    field: str,
    error_type: str | None,
) -> None:
    response = await http.request(method, url, json=payload)
    body = assert_problem(response, 422, "core.validation_error", instance=ITEMS)
    errors = body["errors"]
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert {"field", "loc", "message", "type"} <= error.keys(), error
        assert isinstance(error["message"], str)
        assert error["message"]
    matching = [e for e in errors if e["field"] == field]
    assert matching, errors
    if error_type is not None:
        assert matching[0]["type"] == error_type
    assert field in body["detail"]
    assert await item_names(http) == []


async def test_several_invalid_fields_are_all_reported(http: httpx.AsyncClient) -> None:
    response = await http.get(ITEMS, params={"limit": 0, "cursor": "garbage"})
    body = assert_problem(response, 422, "core.validation_error")
    assert {e["field"] for e in body["errors"]} == {"limit", "cursor"}


# -- 413 body limit ----------------------------------------------------------------------------


async def test_body_at_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    data = json_body(LIMIT, "at-limit")
    response = await http.post(ITEMS, content=data, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "at-limit"


async def test_content_length_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    data = json_body(LIMIT + 1, "too-big")
    response = await http.post(ITEMS, content=data, headers={"content-type": "application/json"})
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    body = assert_problem(response, 413, "core.payload_too_large")
    assert str(LIMIT) in body["detail"]
    assert await item_names(http) == []


async def test_chunked_body_at_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post(
        ITEMS,
        content=chunks(json_body(LIMIT, "chunked")),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 201, response.text
    assert await item_names(http) == ["chunked"]


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post(
        ITEMS,
        content=chunks(json_body(LIMIT * 5, "chunked-too-big")),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers.get("transfer-encoding") == "chunked"
    body = assert_problem(response, 413, "core.payload_too_large")
    assert str(LIMIT) in body["detail"]
    assert await item_names(http) == []


# -- 500 ---------------------------------------------------------------------------------------


async def test_unhandled_exception_is_a_500_without_internals(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    caplog.handler.addFilter(RequestIdFilter())  # as `courtyard serve` does in production
    response = await http.get("/api/v1/alpha/boom", headers={"x-request-id": "boom-req-1"})

    body = assert_problem(response, 500, "core.internal_error")
    assert body["request_id"] == "boom-req-1"
    for leak in ("hunter2", "password", "Traceback", "RuntimeError", "router.py"):
        assert leak not in response.text

    logged = [r for r in caplog.records if r.exc_info and "hunter2" in str(r.exc_info[1])]
    assert len(logged) == 1, caplog.text
    line = logging.Formatter(LOG_FORMAT).format(logged[0])
    assert "[request_id=boom-req-1]" in line
    assert "Traceback (most recent call last)" in line
    assert "RuntimeError: secret internal detail: password=hunter2" in line


async def test_a_broken_query_is_a_500_with_a_trace_not_an_outage(
    main_plugins: None, app_client, caplog: pytest.LogCaptureFixture
) -> None:
    """The database answers, but the query is wrong (here: the table was never migrated).

    Not "database unavailable" (a 503 telling clients to retry, with a one-line warning): on
    SQLite "no such table" is an OperationalError just like "unable to open database file".
    """
    caplog.set_level(logging.ERROR)
    async with app_client(enabled_plugins=PLUGINS, upgrade=False) as client:
        response = await client.get(ITEMS)
    assert_problem(response, 500, "core.internal_error")
    assert "alpha_item" not in response.text
    traces = [r for r in caplog.records if r.exc_info and "alpha_item" in str(r.exc_info[1])]
    assert traces, caplog.text


# -- AppError from a service -------------------------------------------------------------------


async def test_not_found_raised_by_a_service(client: httpx.AsyncClient) -> None:
    missing = f"alp_{ULID()}"
    body = assert_problem(await client.get(f"{ITEMS}/{missing}"), 404, "alpha.not_found")
    assert missing in body["detail"]
    assert_problem(await client.delete(f"{ITEMS}/{missing}"), 404, "alpha.not_found")
    assert_problem(await client.get(f"{ITEMS}/not-even-an-id"), 404, "alpha.not_found")


async def test_app_error_with_custom_status_from_a_service(client: httpx.AsyncClient) -> None:
    response = await client.post(ITEMS, json={"name": "x" * 51})  # default max_name_length 50
    body = assert_problem(response, 422, "alpha.name_too_long")
    assert body["detail"] == "Name is too long"
    assert (await client.post(ITEMS, json={"name": "x" * 50})).status_code == 201
    assert await item_names(client) == ["x" * 50]


async def test_app_error_follows_plugin_settings(main_plugins: None, app_client) -> None:
    async with app_client(
        enabled_plugins=PLUGINS, plugin_settings={"alpha": {"max_name_length": 3}}
    ) as client:
        assert_problem(await client.post(ITEMS, json={"name": "abcd"}), 422, "alpha.name_too_long")
        assert (await client.post(ITEMS, json={"name": "abc"})).status_code == 201
        assert await item_names(client) == ["abc"]


# -- X-Request-ID ------------------------------------------------------------------------------


REQUESTS = [
    pytest.param("GET", "/health/live", {}, 200, id="200"),
    pytest.param("GET", "/nowhere", {}, 404, id="404"),
    pytest.param("DELETE", "/health/live", {}, 405, id="405"),
    pytest.param("GET", f"{ITEMS}?limit=0", {}, 422, id="422"),
    pytest.param("GET", "/api/v1/alpha/whoami", {}, 401, id="401"),
    pytest.param("POST", ITEMS, {"content": b"{" + b" " * LIMIT + b"}"}, 413, id="413"),
    pytest.param("POST", ITEMS, {"content": "chunked"}, 413, id="413-chunked"),
    pytest.param("GET", "/api/v1/alpha/boom", {}, 500, id="500"),
]


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    kwargs: dict[str, object],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if kwargs.get("content") == "chunked":
        kwargs = {"content": chunks(b"{" + b" " * (LIMIT * 2) + b"}")}
    if "content" in kwargs:  # a JSON route's body, labelled as one (else it is a 415)
        headers = {"content-type": "application/json", **(headers or {})}
    return await client.request(method, url, **kwargs, headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), REQUESTS)
async def test_every_response_carries_a_generated_request_id(
    http: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, object], status: int
) -> None:
    first = await _send(http, method, url, kwargs)
    second = await _send(http, method, url, kwargs)
    assert first.status_code == second.status_code == status, first.text
    ids = [r.headers.get("x-request-id") for r in (first, second)]
    assert all(i and SANE_REQUEST_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]
    if status >= 400:
        assert first.json()["request_id"] == ids[0]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), REQUESTS)
async def test_a_sane_request_id_is_echoed(
    http: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, object], status: int
) -> None:
    sent = "edge-7f3a.req:42_X"
    response = await _send(http, method, url, kwargs, headers={"x-request-id": sent})
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == sent
    if status >= 400:
        assert response.json()["request_id"] == sent


@pytest.mark.parametrize("sent", ["a", "Z" * 128, "0123-abcd-ef.gh:ij_kl"])
async def test_request_id_edge_values_are_echoed(http: httpx.AsyncClient, sent: str) -> None:
    response = await http.get("/nowhere", headers={"x-request-id": sent})
    assert response.headers["x-request-id"] == sent
    assert response.json()["request_id"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"x" * 129, id="129-chars"),
        pytest.param(b"x" * 300, id="300-chars"),
        pytest.param(b"has space", id="space"),
        pytest.param(b"tab\there", id="tab"),
        pytest.param(b"line\nbreak", id="newline"),
        pytest.param(b"trailing-newline\n", id="trailing-newline"),
        pytest.param(b"cr\rlf", id="carriage-return"),
        pytest.param(b"nul\x00byte", id="nul"),
        pytest.param(b"caf\xe9", id="latin-1"),
        pytest.param(b"<script>", id="markup"),
        pytest.param(b"a;b=c", id="separator"),
    ],
)
async def test_an_insane_request_id_is_replaced(http: httpx.AsyncClient, sent: bytes) -> None:
    response = await http.get("/nowhere", headers=[(b"x-request-id", sent)])
    replaced = response.headers["x-request-id"]
    assert SANE_REQUEST_ID.fullmatch(replaced), replaced
    assert replaced.encode() != sent
    assert len(replaced) >= 16  # a generated id, not a trimmed copy of the input
    assert response.json()["request_id"] == replaced
