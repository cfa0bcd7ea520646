"""Who is calling: `current_principal` (401) and `require_role` (403).

`alpha`'s test authenticator trusts `X-Test-User: <user id>[:role,role]` only when its
`trust_test_header` setting is on; with it off, no plugin authenticates anybody. None of this
touches the database, so one backend is enough.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.app import create_app
from core.caller import caller_id
from tests.conftest import make_settings, running
from tests.support.problems import assert_problem

WHOAMI = "/api/v1/alpha/whoami"
ADMIN_ONLY = "/api/v1/alpha/admin-only"

Factory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_client(main_plugins: None, tmp_path: Path) -> Factory:
    @asynccontextmanager
    async def factory(*, trust: bool) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", enabled_plugins="alpha"
        )
        app = create_app(settings, plugin_settings={"alpha": {"trust_test_header": trust}})
        async with running(app) as client:
            yield client

    return factory


@pytest.fixture
async def anonymous(make_client: Factory) -> AsyncIterator[httpx.AsyncClient]:
    """No authenticator recognises anybody."""
    async with make_client(trust=False) as client:
        yield client


@pytest.fixture
async def trusting(make_client: Factory) -> AsyncIterator[httpx.AsyncClient]:
    """`X-Test-User` authenticates."""
    async with make_client(trust=True) as client:
        yield client


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401, "core.unauthorized")
    assert response.headers.get("www-authenticate") == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),
        pytest.param({"x-test-user": "usr_x:admin,other"}, id="untrusted-test-header"),
        pytest.param({"authorization": "Bearer some.jwt.token"}, id="bearer-nobody-checks"),
    ],
)
@pytest.mark.parametrize("path", [WHOAMI, ADMIN_ONLY])
async def test_without_an_authenticator_protected_routes_answer_401(
    anonymous: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    assert_unauthorized(await anonymous.get(path, headers=headers))


async def test_public_routes_need_no_principal(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/alpha/greeting")
    assert response.status_code == 200
    assert response.json() == {"greeting": "hello"}


async def test_authenticated_caller_gets_its_principal(trusting: httpx.AsyncClient) -> None:
    response = await trusting.get(WHOAMI, headers={"x-test-user": "usr_x:admin,other"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_x", "roles": ["admin", "other"]}

    response = await trusting.get(WHOAMI, headers={"x-test-user": "usr_plain"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_plain", "roles": []}


async def test_an_authenticator_that_recognises_nobody_means_401(
    trusting: httpx.AsyncClient,
) -> None:
    assert_unauthorized(await trusting.get(WHOAMI))
    assert_unauthorized(await trusting.get(ADMIN_ONLY))


@pytest.mark.parametrize("user", ["usr_y:other", "usr_y", "usr_y:administrator,Admin"])
async def test_missing_role_is_403(trusting: httpx.AsyncClient, user: str) -> None:
    response = await trusting.get(ADMIN_ONLY, headers={"x-test-user": user})
    body = assert_problem(response, 403, "core.forbidden")
    assert "admin" in body["detail"]
    assert "www-authenticate" not in response.headers


async def test_required_role_lets_the_caller_through(trusting: httpx.AsyncClient) -> None:
    response = await trusting.get(ADMIN_ONLY, headers={"x-test-user": "usr_x:admin,other"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_x"}


async def test_a_callers_id_does_not_outlive_their_request(
    main_plugins: None, tmp_path: Path
) -> None:
    """The caller the database layer routes reads by (`core.caller`), set once a request's
    principal is resolved, is gone before the next request runs in the same task (as
    httpx.ASGITransport runs them all in the client's): an anonymous request after a
    signed-in one neither reads nor writes as that caller."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", enabled_plugins="alpha"
    )
    app = create_app(settings, plugin_settings={"alpha": {"trust_test_header": True}})

    async def seen_caller() -> dict[str, str | None]:
        return {"caller": caller_id.get()}

    app.add_api_route("/test/caller", seen_caller)
    async with running(app) as client:
        signed_in = await client.get(WHOAMI, headers={"x-test-user": "usr_x"})
        assert signed_in.status_code == 200, signed_in.text
        assert caller_id.get() is None  # nothing left behind in the client's task
        assert (await client.get("/test/caller")).json() == {"caller": None}


# -- OpenAPI: Swagger's "Authorize" button -----------------------------------------------------


def _bearer_schemes(spec: dict[str, Any]) -> set[str]:
    schemes = spec.get("components", {}).get("securitySchemes", {})
    return {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer"
    }


async def test_openapi_declares_a_bearer_scheme_used_by_protected_routes(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    bearer = _bearer_schemes(spec)
    assert bearer, spec.get("components", {}).get("securitySchemes")

    for path, statuses in ((WHOAMI, {"401"}), (ADMIN_ONLY, {"401", "403"})):
        operation = spec["paths"][path]["get"]
        used = {name for requirement in operation.get("security", []) for name in requirement}
        assert used & bearer, (path, operation.get("security"))
        assert statuses <= operation["responses"].keys(), (path, operation["responses"].keys())
        for status in statuses:
            content = operation["responses"][status].get("content", {})
            assert "application/problem+json" in content, (path, status, content)


async def test_swagger_ui_is_served(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text
