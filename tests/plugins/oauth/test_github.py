"""The GitHub preset: OAuth 2.0 without OpenID Connect, the account read from its API."""

from __future__ import annotations

from tests.plugins.oauth.conftest import Browser, query_of
from tests.plugins.oauth.idp import GITHUB_CLIENT_ID, Account
from tests.support.problems import assert_problem


async def test_signing_in_with_github(browser: Browser) -> None:
    browser.idp.account = Account(sub="583231", email="octo@example.com", name="The Octocat")

    first = await browser.signed_in("github")
    second = await browser.signed_in("github")

    assert first["user"]["email"] == "octo@example.com"
    assert first["user"]["name"] == "The Octocat"
    assert first["user"]["email_verified"] is True
    assert second["user"]["id"] == first["user"]["id"]
    assert await browser.auth.rows("SELECT provider, subject FROM oauth_identity") == [
        ("github", "583231")
    ]
    asked = browser.idp.authorize_requests[0]
    assert asked["client_id"] == GITHUB_CLIENT_ID
    assert asked["scope"] == "read:user user:email"
    assert asked["code_challenge_method"] == "S256"
    assert "nonce" not in asked
    exchanged = browser.idp.token_requests[0]
    assert exchanged["client_id"] == GITHUB_CLIENT_ID  # client_secret_post, as GitHub wants


async def test_an_unverified_primary_github_email_does_not_take_over_an_account(
    browser: Browser,
) -> None:
    await browser.auth.signup("octo@example.com")
    browser.idp.account = Account(sub="583231", email="octo@example.com", email_verified=False)

    assert_problem(await browser.sign_in("github"), 409, "auth.link_required")


async def test_github_refusing_the_code_is_a_400(browser: Browser) -> None:
    """GitHub answers a bad code with 200 and an `error` field."""
    browser.idp.account = Account(sub="583231")
    location = await browser.returning("github")
    assert (await browser.callback(location)).status_code == 200
    used = query_of(location)
    fresh = query_of(await browser.returning("github"))

    response = await browser.client.get(
        "/api/v1/auth/oauth/github/callback", params={"code": used["code"], "state": fresh["state"]}
    )

    assert_problem(response, 400, "auth.oauth_code_rejected")


async def test_a_github_account_without_any_email_cannot_sign_up(browser: Browser) -> None:
    browser.idp.account = Account(sub="583231")
    browser.idp.github_emails = []

    assert_problem(await browser.sign_in("github"), 400, "auth.oauth_email_required")


async def test_an_iss_parameter_is_ignored_for_a_provider_without_an_issuer(
    browser: Browser,
) -> None:
    browser.idp.account = Account(sub="583231")
    browser.idp.tamper["iss"] = "https://github.com"

    assert (await browser.sign_in("github")).status_code == 200
