"""The flow's own defences: allow-listed redirects, `state`, single use, browser binding.

Every failure is a problem response with a stable code, and nothing is signed in.
"""

from __future__ import annotations

import socket

import pytest

from tests.plugins.oauth.conftest import FRONTEND, OAUTH, Browser, query_of
from tests.support.problems import assert_problem


async def assert_nobody_signed_in(browser: Browser) -> None:
    assert await browser.auth.rows("SELECT id FROM auth_session") == []
    assert await browser.auth.rows("SELECT id FROM oauth_identity") == []


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/oauth/done",
        "https://app.example.com.evil.example/oauth/done",  # a prefix of the host
        "https://app.example.com/oauth/done-evil",  # exact entry: no longer path
        "https://app.example.com/oauth/done/more",
        "http://app.example.com/oauth/done",  # another scheme
        "https://app.example.com:8443/oauth/done",  # another port
        "https://user@app.example.com/oauth/done",
        "https://app.example.com/oauth/done#x",
        "https://admin.example.com/../x",
        "https://admin.example.com/a/%2e%2e/x",
        "https://admin.example.com\\@evil.example/",
        "//evil.example/",
        "javascript:alert(1)",
    ],
)
async def test_a_redirect_uri_off_the_allow_list_is_refused(
    browser: Browser, redirect_uri: str
) -> None:
    response = await browser.authorize(redirect_uri=redirect_uri)

    assert_problem(response, 400, "auth.oauth_redirect_not_allowed")
    assert browser.idp.authorize_requests == []
    assert await browser.auth.rows("SELECT id FROM oauth_flow") == []


async def test_with_no_allow_list_every_redirect_uri_is_refused(oauth_app: object) -> None:
    async with oauth_app(redirect_allowlist=[]) as browser:  # type: ignore[operator]
        assert_problem(
            await browser.authorize(redirect_uri=FRONTEND), 400, "auth.oauth_redirect_not_allowed"
        )


async def test_a_wrong_state_is_refused(browser: Browser) -> None:
    location = await browser.returning()
    params = query_of(location)

    response = await browser.client.get(
        f"{OAUTH}/acme/callback", params={"code": params["code"], "state": "forged"}
    )

    assert_problem(response, 400, "auth.oauth_invalid_state")
    no_state = await browser.client.get(f"{OAUTH}/acme/callback?code={params['code']}")
    assert_problem(no_state, 400, "auth.oauth_invalid_state")
    await assert_nobody_signed_in(browser)


async def test_a_state_of_another_provider_is_refused(browser: Browser) -> None:
    params = query_of(await browser.returning("acme"))

    response = await browser.client.get(f"{OAUTH}/github/callback", params=params)

    assert_problem(response, 400, "auth.oauth_invalid_state")


async def test_a_replayed_callback_is_refused(browser: Browser) -> None:
    location = await browser.returning()
    first = await browser.callback(location)
    assert first.status_code == 200, first.text

    again = await browser.callback(location)

    assert_problem(again, 400, "auth.oauth_invalid_state")
    assert len(await browser.auth.rows("SELECT id FROM auth_session")) == 1


async def test_a_replayed_code_with_a_fresh_state_is_refused_by_the_provider(
    browser: Browser,
) -> None:
    location = await browser.returning()
    used = query_of(location)
    assert (await browser.callback(location)).status_code == 200
    fresh = query_of(await browser.returning())

    response = await browser.client.get(
        f"{OAUTH}/acme/callback", params={"code": used["code"], "state": fresh["state"]}
    )

    assert_problem(response, 400, "auth.oauth_code_rejected")
    # and the fresh flow is spent too: its own code no longer helps
    retry = await browser.client.get(f"{OAUTH}/acme/callback", params=fresh)
    assert_problem(retry, 400, "auth.oauth_invalid_state")


async def test_a_code_sent_without_the_flows_pkce_verifier_is_refused(browser: Browser) -> None:
    """The provider checks PKCE: the code of one flow with the verifier of another fails."""
    first = query_of(await browser.returning())
    second = query_of(await browser.returning())

    response = await browser.client.get(
        f"{OAUTH}/acme/callback", params={"code": first["code"], "state": second["state"]}
    )

    assert_problem(response, 400, "auth.oauth_code_rejected")


async def test_a_callback_in_another_browser_is_refused(browser: Browser) -> None:
    """Login CSRF: a callback URL planted in someone else's browser signs nobody in."""
    location = await browser.returning()

    async with browser.auth.client_from("10.0.0.9") as other_browser:
        response = await browser.callback(location, client=other_browser)

    assert_problem(response, 400, "auth.oauth_invalid_state")
    await assert_nobody_signed_in(browser)


async def test_an_expired_flow_is_refused(browser: Browser) -> None:
    location = await browser.returning()
    await browser.auth.execute("UPDATE oauth_flow SET expires_at = created_at")

    assert_problem(await browser.callback(location), 400, "auth.oauth_invalid_state")


async def test_expired_flows_are_purged_when_new_ones_start(browser: Browser) -> None:
    await browser.authorize()
    await browser.auth.execute("UPDATE oauth_flow SET expires_at = created_at")

    await browser.authorize()

    assert len(await browser.auth.rows("SELECT id FROM oauth_flow")) == 1


async def test_the_flow_state_is_stored_hashed(browser: Browser) -> None:
    state = query_of((await browser.authorize()).headers["location"])["state"]

    [(state_hash,)] = await browser.auth.rows("SELECT state_hash FROM oauth_flow")
    assert state not in state_hash
    assert len(state_hash) == 64


async def test_the_provider_refusing_is_a_400(browser: Browser) -> None:
    browser.idp.tamper["deny"] = True

    response = await browser.sign_in()

    body = assert_problem(response, 400, "auth.oauth_denied")
    assert "access_denied" in body["detail"]


async def test_an_answer_naming_another_issuer_is_refused(browser: Browser) -> None:
    """RFC 9207: `iss` in the authorization response must be this provider's."""
    browser.idp.tamper["iss"] = "https://mix-up.example"

    assert_problem(await browser.sign_in(), 400, "auth.oauth_invalid_callback")


async def test_a_callback_without_a_code_is_refused(browser: Browser) -> None:
    params = query_of(await browser.returning())

    response = await browser.client.get(f"{OAUTH}/acme/callback", params={"state": params["state"]})

    assert_problem(response, 400, "auth.oauth_invalid_callback")


async def test_the_browser_cookie_is_http_only_lax_and_scoped_to_the_oauth_routes(
    browser: Browser,
) -> None:
    response = await browser.authorize()

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("courtyard_oauth_browser=")
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "path=/api/v1/auth/oauth" in lowered
    assert "max-age=600" in lowered


async def test_an_unreachable_provider_is_a_502_problem(
    oauth_app: object, unused_port: int
) -> None:
    providers = {
        "down": {
            "issuer": f"http://127.0.0.1:{unused_port}",
            "client_id": "x",
            "client_secret": "y",
        }
    }
    async with oauth_app(providers=providers) as browser:  # type: ignore[operator]
        response = await browser.client.get(f"{OAUTH}/down/authorize")

    assert_problem(response, 502, "auth.oauth_provider_unavailable")


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_callback_parameters_have_bounds(browser: Browser) -> None:
    response = await browser.client.get(
        f"{OAUTH}/acme/callback", params={"code": "x" * 5000, "state": "y"}
    )

    assert_problem(response, 422, "core.validation_error")
