"""CORS (`COURTYARD_CORS_*`), as a browser meets it: preflights, simple requests, error
responses a page can read, credentials, and configuration refused at startup."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.settings import ConfigurationError, CoreSettings
from tests.conftest import AppFactory
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard
from tests.support.problems import assert_problem
from tests.support.served import free_port

APP = "https://app.example.com"
ELSEWHERE = "https://evil.example.net"
ME = "/api/v1/users/me"
PLUGINS = "user,auth,mail"


async def preflight(
    client: httpx.AsyncClient, origin: str, method: str = "GET", headers: str | None = None
) -> httpx.Response:
    """What a browser asks before sending `method` (with `headers`) to ME from `origin`."""
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return await client.options(ME, headers=asked)


async def test_a_preflight_from_a_listed_origin_is_answered_with_what_it_may_do(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, cors_origins=APP) as client:
        response = await preflight(client, APP, "DELETE", "authorization, content-type")

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    methods = response.headers["access-control-allow-methods"].split(", ")
    assert set(methods) == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    allowed = response.headers["access-control-allow-headers"].lower().split(", ")
    assert {"authorization", "content-type", "x-request-id"} <= set(allowed)
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert "Origin" in response.headers["vary"]


async def test_a_preflight_from_another_origin_is_refused_with_a_problem(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, cors_origins=APP) as client:
        refused = await preflight(client, ELSEWHERE)
        wrong_method = await preflight(client, APP, "QUERY")
        wrong_header = await preflight(client, APP, "GET", "x-secret-header")

    for response in (refused, wrong_method, wrong_header):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "core.cors_refused"
        assert body["instance"] == ME
    assert "access-control-allow-origin" not in refused.headers
    assert refused.json()["detail"] == (
        "CORS preflight refused: Origin not allowed (COURTYARD_CORS_*)"
    )
    assert "Access-Control-Request-Method" in wrong_method.json()["detail"]
    assert "Access-Control-Request-Headers" in wrong_header.json()["detail"]


async def test_a_refused_preflight_names_every_request_header_at_fault(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, cors_origins=APP) as client:
        everything = await client.options(
            ME,
            headers={
                "Origin": ELSEWHERE,
                "Access-Control-Request-Method": "QUERY",
                "Access-Control-Request-Headers": "authorization, x-secret-header",
                "Access-Control-Request-Private-Network": "true",
            },
        )
        only_the_network = await client.options(
            ME,
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Private-Network": "true",
            },
        )

    assert everything.json()["detail"] == (
        "CORS preflight refused: Origin, Access-Control-Request-Method, "
        "Access-Control-Request-Headers, Access-Control-Request-Private-Network not allowed "
        "(COURTYARD_CORS_*)"
    )
    assert only_the_network.status_code == 400
    assert only_the_network.json()["detail"] == (
        "CORS preflight refused: Access-Control-Request-Private-Network not allowed "
        "(COURTYARD_CORS_*)"
    )
    # The CORS headers of the refusal are Starlette's: what the page may do instead.
    assert only_the_network.headers["access-control-allow-origin"] == APP


async def test_a_simple_request_from_a_listed_origin_may_read_the_answer(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, cors_origins=f"{APP},http://localhost:3000") as (
        client
    ):
        listed = await client.get("/health/live", headers={"Origin": "http://localhost:3000"})
        other = await client.get("/health/live", headers={"Origin": ELSEWHERE})
        no_origin = await client.get("/health/live")

    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = listed.headers["access-control-expose-headers"].split(", ")
    assert exposed == ["X-Request-ID", "Retry-After", "Location"]
    assert "Origin" in listed.headers["vary"]
    # Served all the same (CORS is the browser's to enforce), but nothing lets a page read it.
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in no_origin.headers


async def test_error_responses_carry_the_cors_headers(app_client: AppFactory) -> None:
    """A page must be able to read why its request failed: a route's 401 and the 413 the
    request-context middleware answers itself (before any route runs) both say so."""
    async with app_client(enabled_plugins=PLUGINS, cors_origins=APP, max_request_body=64) as client:
        unauthorized = await client.get(ME, headers={"Origin": APP})
        too_large = await client.post(
            "/api/v1/auth/login", json={"email": "x" * 100}, headers={"Origin": APP}
        )

    for response, status, code in (
        (unauthorized, 401, "core.unauthorized"),
        (too_large, 413, "core.payload_too_large"),
    ):
        assert_problem(response, status, code)
        assert response.headers["access-control-allow-origin"] == APP
        assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_credentials_are_allowed_only_when_asked_for(app_client: AppFactory) -> None:
    async with app_client(
        enabled_plugins=PLUGINS, cors_origins=APP, cors_allow_credentials=True
    ) as client:
        answered = await preflight(client, APP, "POST", "content-type")
        simple = await client.get(ME, headers={"Origin": APP})

    for response in (answered, simple):
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["access-control-allow-origin"] == APP  # never `*` then


async def test_every_origin_without_credentials_is_answered_with_a_star(
    app_client: AppFactory,
) -> None:
    async with app_client(enabled_plugins=PLUGINS, cors_origins="*") as client:
        answered = await preflight(client, ELSEWHERE)
        simple = await client.get("/health/live", headers={"Origin": ELSEWHERE})

    assert answered.status_code == 200
    for response in (answered, simple):
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers


async def test_without_origins_there_is_no_cors_at_all(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins=PLUGINS) as client:
        answered = await preflight(client, APP)
        simple = await client.get("/health/live", headers={"Origin": APP})

    assert_problem(answered, 405, "core.method_not_allowed")
    assert not [name for name in simple.headers if name.startswith("access-control-")]


def test_every_origin_with_credentials_stops_the_server_in_one_line(tmp_path: Path) -> None:
    """Any site could otherwise act with its visitors' cookies (Starlette would echo each
    site's origin back): refused before the server starts."""
    env = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cors.db'}",
        "COURTYARD_CORS_ORIGINS": "*",
        "COURTYARD_CORS_ALLOW_CREDENTIALS": "true",
    }
    port = str(free_port())
    result = run_courtyard("serve", "--port", port, cwd=tmp_path, env=env, timeout=60)
    assert_one_line_error(
        result,
        "COURTYARD_CORS_ORIGINS=* cannot go with COURTYARD_CORS_ALLOW_CREDENTIALS=true",
        "list the origins instead",
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://app.example.com/", "'https://app.example.com/' is not an origin"),
        ("app.example.com", "'app.example.com' is not an origin"),
        ("https://app.example.com/path", "with no path"),
        ("https://app.example.com:99999", "is not an origin"),
        ("*, https://app.example.com", "'*' (every origin) must stand alone"),
    ],
)
def test_an_origin_a_browser_would_never_send_is_refused_naming_the_setting(
    value: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CoreSettings.load(cors_origins=value)
    message = str(caught.value)
    assert message.startswith("invalid configuration: COURTYARD_CORS_ORIGINS: "), message
    assert problem in message


def test_origins_are_written_as_browsers_send_them() -> None:
    settings = CoreSettings.load(
        cors_origins="HTTPS://App.Example.com:443, http://localhost:3000, http://[::1]:80",
        cors_allow_methods="get, patch",
    )
    assert settings.cors_origins == [APP, "http://localhost:3000", "http://[::1]"]
    assert settings.cors_allow_methods == ["GET", "PATCH"]


def test_origins_may_be_a_list_in_courtyard_toml() -> None:
    Path("courtyard.toml").write_text(
        'cors_origins = ["https://app.example.com", "https://admin.example.com"]\n'
        "cors_allow_credentials = true\n"
    )
    settings = CoreSettings.load()
    assert settings.cors_origins == [APP, "https://admin.example.com"]
    assert settings.cors_allow_credentials is True
