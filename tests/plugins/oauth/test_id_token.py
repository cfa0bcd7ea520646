"""The ID token proves the sign-in only when every check passes: signature by the
provider's published key, `iss`, `aud`, `exp`, `nonce`. Any other token is a 400."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.plugins.oauth.conftest import Browser
from tests.plugins.oauth.idp import CLIENT_ID
from tests.support.problems import assert_problem


async def assert_refused(browser: Browser, code: str = "auth.oauth_invalid_id_token") -> None:
    response = await browser.sign_in()
    assert_problem(response, 400, code)
    assert await browser.auth.rows("SELECT id FROM auth_session") == []
    assert await browser.auth.rows('SELECT id FROM "user"') == []


async def test_an_id_token_with_another_nonce_is_refused(browser: Browser) -> None:
    browser.idp.tamper["claims"] = {"nonce": "a-nonce-of-another-flow"}

    await assert_refused(browser)


async def test_an_id_token_without_a_nonce_is_refused(browser: Browser) -> None:
    browser.idp.tamper["claims"] = {"nonce": None}

    await assert_refused(browser)


@pytest.mark.parametrize("kid", ["rogue-key", "main-key"])
async def test_an_id_token_signed_by_another_key_is_refused(browser: Browser, kid: str) -> None:
    """Whether its `kid` is unknown (the keys are fetched again, in vain) or claims to be
    the provider's key."""
    browser.idp.tamper.update(sign_with_other_key=True, kid=kid)

    await assert_refused(browser)


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-client"},
        {"aud": ["another-client", "yet-another"]},
        {"iss": "https://impostor.example"},
        {"exp": int(time.time()) - 3600},
        {"sub": None},
        {"iat": None},
    ],
    ids=["aud", "aud-list", "iss", "expired", "no-sub", "no-iat"],
)
async def test_an_id_token_with_a_wrong_claim_is_refused(
    browser: Browser, claims: dict[str, Any]
) -> None:
    browser.idp.tamper["claims"] = claims

    await assert_refused(browser)


async def test_several_audiences_need_azp_to_be_us(browser: Browser) -> None:
    browser.idp.tamper["claims"] = {"aud": [CLIENT_ID, "other"], "azp": "other"}
    await assert_refused(browser)

    browser.idp.tamper["claims"] = {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}
    assert (await browser.sign_in()).status_code == 200


async def test_a_token_response_without_an_id_token_is_refused(browser: Browser) -> None:
    browser.idp.tamper["no_id_token"] = True

    await assert_refused(browser)


async def test_an_hmac_signed_id_token_is_refused(browser: Browser) -> None:
    """Only the asymmetric algorithms the provider announces: no HS256 with a public key."""
    browser.idp.tamper["hs256_with_public_key"] = True

    await assert_refused(browser)


async def test_a_discovery_document_for_another_issuer_is_refused(browser: Browser) -> None:
    browser.idp.tamper["discovery_issuer"] = "https://impostor.example"

    response = await browser.authorize()

    assert_problem(response, 502, "auth.oauth_provider_unavailable")


async def test_the_email_may_come_from_userinfo(browser: Browser) -> None:
    browser.idp.tamper["email_in_userinfo_only"] = True

    body = await browser.signed_in()

    assert body["user"]["email"] == "alice@example.com"
    assert body["user"]["email_verified"] is True


async def test_userinfo_about_another_subject_is_refused(browser: Browser) -> None:
    browser.idp.tamper.update(email_in_userinfo_only=True, userinfo_sub="mallory")

    await assert_refused(browser, "auth.oauth_invalid_account")
