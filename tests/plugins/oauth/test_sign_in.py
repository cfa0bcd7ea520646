"""Signing in with an OpenID Connect provider, end to end over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.plugins.auth.conftest import PASSWORD, bearer
from tests.plugins.oauth.conftest import FRONTEND, OAUTH, Browser, query_of
from tests.plugins.oauth.idp import CLIENT_ID
from tests.support.problems import assert_problem


async def test_first_sign_in_creates_the_account_and_the_next_signs_in_the_same_one(
    browser: Browser,
) -> None:
    first = await browser.signed_in()

    assert first["token_type"] == "bearer"
    assert first["user"]["email"] == "alice@example.com"
    assert first["user"]["name"] == "Alice Liddell"
    assert first["user"]["email_verified"] is True
    me = await browser.auth.me(first)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == first["user"]["id"]

    second = await browser.signed_in()

    assert second["user"]["id"] == first["user"]["id"]
    assert second["access_token"] != first["access_token"]
    rows = await browser.auth.rows("SELECT user_id, provider, subject, email FROM oauth_identity")
    assert rows == [(first["user"]["id"], "acme", "alice-0001", "alice@example.com")]
    assert len(await browser.auth.rows('SELECT id FROM "user"')) == 1
    assert await browser.auth.rows("SELECT user_id FROM auth_credential") == []


async def test_the_provider_sees_pkce_s256_a_nonce_a_state_and_our_callback(
    browser: Browser,
) -> None:
    await browser.signed_in()

    [asked] = browser.idp.authorize_requests
    assert asked["client_id"] == CLIENT_ID
    assert asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert len(asked["nonce"]) >= 32
    assert len(asked["state"]) >= 32
    assert set(asked["scope"].split()) == {"openid", "email", "profile"}
    assert asked["redirect_uri"] == "http://testserver/api/v1/auth/oauth/acme/callback"
    [exchanged] = browser.idp.token_requests
    assert len(exchanged["code_verifier"]) >= 43
    assert "client_secret" not in exchanged  # client_secret_basic, as announced


async def test_a_front_end_redirect_carries_the_tokens_in_the_fragment(browser: Browser) -> None:
    response = await browser.sign_in(redirect_uri=FRONTEND)

    assert response.status_code == 302, response.text
    location = response.headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == FRONTEND
    assert parts.query == ""
    fragment = {k: v[0] for k, v in parse_qs(parts.fragment).items()}
    assert fragment["token_type"] == "bearer"
    assert int(fragment["expires_in"]) > 0
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    me = await browser.auth.me(fragment["access_token"])
    assert me.status_code == 200
    assert me.json()["id"] == fragment["user_id"]
    refreshed = await browser.auth.refresh(fragment["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text


async def test_a_prefix_entry_of_the_allow_list_admits_paths_under_it(browser: Browser) -> None:
    response = await browser.sign_in(redirect_uri="https://admin.example.com/in/?tab=1")

    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith("https://admin.example.com/in/?tab=1#")


async def test_an_account_without_a_password_gets_the_usual_401_on_password_login(
    browser: Browser,
) -> None:
    await browser.signed_in()

    assert_problem(
        await browser.auth.login("alice@example.com", PASSWORD), 401, "auth.invalid_credentials"
    )


async def test_the_configured_providers_are_listed(browser: Browser) -> None:
    response = await browser.client.get(f"{OAUTH}/providers")

    assert response.status_code == 200
    assert response.json() == [
        {"name": "acme", "kind": "oidc"},
        {"name": "github", "kind": "github"},
    ]


async def test_unknown_provider_is_404_on_every_route(browser: Browser) -> None:
    tokens = await browser.signed_in()

    for response in (
        await browser.authorize("nope"),
        await browser.client.get(f"{OAUTH}/nope/callback?code=x&state=y"),
        await browser.client.post(f"{OAUTH}/identities/nope", headers=bearer(tokens)),
    ):
        assert_problem(response, 404, "auth.oauth_unknown_provider")


async def test_the_authorize_redirect_goes_to_the_provider(browser: Browser) -> None:
    response = await browser.authorize()

    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{browser.idp.base_url}/authorize?")
    assert query_of(location)["client_id"] == CLIENT_ID
    assert response.headers["cache-control"] == "no-store"


async def test_a_front_end_may_fetch_the_authorization_url_as_json(browser: Browser) -> None:
    started = await browser.client.get(
        f"{OAUTH}/acme/authorize",
        params={"redirect_uri": FRONTEND},
        headers={"Accept": "application/json"},
    )

    assert started.status_code == 200, started.text
    assert "courtyard_oauth_browser=" in started.headers["set-cookie"]
    body = started.json()
    assert body["authorization_url"].startswith(f"{browser.idp.base_url}/authorize?")
    location = await browser.at_provider(body["authorization_url"])
    finished = await browser.callback(location)
    assert finished.status_code == 302
    assert finished.headers["location"].startswith(f"{FRONTEND}#access_token=")
