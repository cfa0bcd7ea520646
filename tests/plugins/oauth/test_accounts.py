"""Which account a provider sign-in lands in: new, existing by verified email, or none."""

from __future__ import annotations

from typing import Any

from tests.plugins.auth.conftest import PASSWORD
from tests.plugins.oauth.conftest import Browser
from tests.plugins.oauth.idp import Account
from tests.support.problems import assert_problem


async def test_an_unverified_email_of_an_existing_account_needs_linking(browser: Browser) -> None:
    """Otherwise whoever registers that address at some provider takes the account over."""
    owner = await browser.auth.signup("alice@example.com")
    browser.idp.account = Account(email="Alice@Example.com", email_verified=False)

    response = await browser.sign_in()

    assert_problem(response, 409, "auth.link_required")
    assert await browser.auth.rows("SELECT id FROM oauth_identity") == []
    sessions = await browser.auth.rows("SELECT user_id FROM auth_session")
    assert sessions == [(owner["user"]["id"],)]  # only the signup's own session


async def test_a_verified_email_links_to_the_existing_account(browser: Browser) -> None:
    owner = await browser.auth.signup("alice@example.com")
    assert owner["user"]["email_verified"] is False

    body = await browser.signed_in()

    assert body["user"]["id"] == owner["user"]["id"]
    assert body["user"]["email_verified"] is True  # the provider vouched for the address
    assert await browser.auth.rows("SELECT user_id, provider FROM oauth_identity") == [
        (owner["user"]["id"], "acme")
    ]
    assert (await browser.auth.login("alice@example.com", PASSWORD)).status_code == 200


async def test_a_new_account_with_an_unverified_email_is_created_unverified(
    browser: Browser,
) -> None:
    browser.idp.account = Account(email="new@example.com", email_verified=False)

    body = await browser.signed_in()

    assert body["user"]["email"] == "new@example.com"
    assert body["user"]["email_verified"] is False


async def test_a_provider_without_an_email_cannot_create_an_account(browser: Browser) -> None:
    browser.idp.account = Account(email=None)

    assert_problem(await browser.sign_in(), 400, "auth.oauth_email_required")
    assert await browser.auth.rows('SELECT id FROM "user"') == []


async def test_a_deactivated_account_gets_logins_answer(browser: Browser) -> None:
    body = await browser.signed_in()

    await browser.auth.user_service(lambda users: users.set_active(body["user"]["id"], False))

    assert_problem(await browser.sign_in(), 401, "auth.invalid_credentials")


async def test_a_deactivated_account_with_the_email_is_not_linked(browser: Browser) -> None:
    owner = await browser.auth.signup("alice@example.com")

    await browser.auth.user_service(lambda users: users.set_active(owner["user"]["id"], False))

    assert_problem(await browser.sign_in(), 401, "auth.invalid_credentials")
    assert await browser.auth.rows("SELECT id FROM oauth_identity") == []


async def test_when_verified_emails_are_required_an_unverified_one_creates_nothing(
    oauth_app: Any,
) -> None:
    async with oauth_app(auth={"require_verified_email": True}) as browser:
        browser.idp.account = Account(email="new@example.com", email_verified=False)

        assert_problem(await browser.sign_in(), 403, "auth.email_not_verified")
        assert await browser.auth.rows('SELECT id FROM "user"') == []

        browser.idp.account = Account(email="new@example.com", email_verified=True)
        assert (await browser.sign_in()).status_code == 200


async def test_a_display_name_the_user_plugin_refuses_falls_back_to_the_email(
    browser: Browser,
) -> None:
    browser.idp.account = Account(name="x" * 5000)

    body = await browser.signed_in()

    assert body["user"]["name"] == "alice"
