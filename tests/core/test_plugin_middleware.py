"""The `register_middleware` hook: a plugin's middleware sees every request the app serves,
inside the core's request-id middleware and its refusal of untrusted forwarded headers, in
plugin order; the access line still names the caller when the middleware runs the route
in a task of its own; a wrong return is refused naming the plugin and the hook. The
plugins are tests/support/observers.py's real distribution."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import AppFactory, make_settings
from tests.support.observers import install_observers
from tests.support.problems import assert_problem

PASSWORD = "a passphrase nobody guesses"


@pytest.fixture(scope="module")
def observers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_observers(tmp_path_factory.mktemp("observers"))


@pytest.fixture
def use_observers(monkeypatch: pytest.MonkeyPatch, observers: Path) -> None:
    monkeypatch.syspath_prepend(str(observers))


def build_error(database_url: str, enabled: str) -> str:
    """The one-line error that stops the app with plugins `enabled` from being built."""
    with pytest.raises(ConfigurationError) as caught:
        create_app(make_settings(database_url, enabled_plugins=enabled))
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_a_plugins_middleware_sees_every_request_with_its_request_id(
    use_observers: None, app_client: AppFactory
) -> None:
    async with app_client(enabled_plugins="earlystamp,latestamp") as client:
        for path, status in (("/health/live", 200), ("/no/such/route", 404)):
            response = await client.get(path)
            assert response.status_code == status
            request_id = response.headers["x-request-id"]
            # Outermost first, in plugin order; each saw the core's request id.
            assert response.headers["x-stamp-earlystamp"] == f"1 {request_id}"
            assert response.headers["x-stamp-latestamp"] == f"2 {request_id}"

        given = await client.get("/health/live", headers={"X-Request-ID": "trace-42"})
        assert given.headers["x-stamp-earlystamp"] == "1 trace-42"


async def test_an_error_in_a_plugins_middleware_is_the_cores_500_problem(
    use_observers: None, app_client: AppFactory
) -> None:
    """Inside the request-context middleware: what escapes it becomes the core's problem
    response, with the request id, not a bare server error. (The request-context middleware
    sends it itself, outside every plugin's middleware: none stamps it.)"""
    async with app_client(enabled_plugins="earlystamp,latestamp") as client:
        response = await client.get("/health/live", headers={"X-Explode": "latestamp"})
        after = await client.get("/health/live")

    assert_problem(response, 500, "core.internal_error")
    assert "exploded" not in response.text  # the cause goes to the log, not the client
    assert not [name for name in response.headers if name.startswith("x-stamp-")]
    assert after.status_code == 200  # one request's failure, not the app's


async def test_a_request_refused_for_an_untrusted_forwarded_header_reaches_no_plugin(
    use_observers: None, app_client: AppFactory
) -> None:
    """The peer names itself in X-Forwarded-For, as only a server's proxy-header step would
    make it (tests/core/test_forwarded.py): the core refuses the request before any
    plugin's middleware sees it, with its problem and request id."""
    async with app_client(enabled_plugins="earlystamp,latestamp") as client:
        transport = httpx.ASGITransport(
            app=client.app,  # type: ignore[attr-defined]
            client=("198.51.100.7", 50000),
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as peer:
            refused = await peer.get("/health/live", headers={"X-Forwarded-For": "198.51.100.7"})
            served = await peer.get("/health/live", headers={"X-Forwarded-For": "203.0.113.1"})

    body = assert_problem(refused, 400, "core.untrusted_forwarded_header")
    assert body["request_id"] == refused.headers["x-request-id"]
    assert not [name for name in refused.headers if name.startswith("x-stamp-")]
    assert served.status_code == 200  # a header naming someone else: ignored, and served
    assert served.headers["x-stamp-earlystamp"].startswith("1 ")


async def test_the_access_line_names_the_caller_through_a_base_http_middleware(
    use_observers: None, app_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette's `BaseHTTPMiddleware` runs the route in a task of its own, where what the
    route sets in a context variable stays: the caller (a sign-up's new user, a signed-in
    caller) still reaches the access line."""
    caplog.set_level(logging.INFO, logger="courtyard.access")
    async with app_client(enabled_plugins="user,auth,mail,taskstamp") as client:
        signed_up = await client.post(
            "/api/v1/auth/signup",
            json={"email": "tasks@example.com", "password": PASSWORD, "name": "Tasks"},
            headers={"X-Request-ID": "task-signup"},
        )
        assert signed_up.status_code == 201, signed_up.text
        token = signed_up.json()["access_token"]
        me = await client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "task-me"},
        )
        anonymous = await client.get("/api/v1/users/me", headers={"X-Request-ID": "task-anon"})

    assert me.status_code == 200, me.text
    assert anonymous.status_code == 401
    assert me.headers["x-task-stamp"] == "seen"
    user_id = signed_up.json()["user"]["id"]
    lines = {
        record.request_id: record  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "courtyard.access"
    }
    assert lines["task-signup"].user_id == user_id  # type: ignore[attr-defined]
    assert lines["task-me"].user_id == user_id  # type: ignore[attr-defined]
    assert not hasattr(lines["task-anon"], "user_id")


def test_register_middleware_returning_no_middleware_is_refused_naming_the_plugin(
    use_observers: None, database_url: str
) -> None:
    assert build_error(database_url, "earlystamp,badmiddleware") == (
        "plugin 'badmiddleware': register_middleware returned a dict, not a "
        "starlette.middleware.Middleware"
    )


def test_middleware_given_arguments_its_class_cannot_take_is_refused_at_build(
    use_observers: None, database_url: str
) -> None:
    """Starlette would build the middleware only at the first request (or the lifespan
    event, which a server may then take for "lifespan unsupported"): checked up front."""
    message = build_error(database_url, "badargs")
    assert message.startswith(
        "plugin 'badargs': register_middleware: Stamp cannot take these arguments: "
    ), message
