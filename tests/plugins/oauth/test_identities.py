"""Linking and unlinking providers from a signed-in account."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.plugins.auth.conftest import bearer
from tests.plugins.oauth.conftest import FRONTEND, OAUTH, Browser
from tests.plugins.oauth.idp import Account
from tests.support.problems import assert_problem

IDENTITIES = f"{OAUTH}/identities"


async def identities(browser: Browser, tokens: dict[str, Any]) -> list[dict[str, Any]]:
    response = await browser.client.get(IDENTITIES, headers=bearer(tokens))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_signed_in_user_links_a_provider_and_then_signs_in_with_it(
    browser: Browser,
) -> None:
    owner = await browser.auth.signup("bob@example.com")
    browser.idp.account = Account(sub="bob-at-acme", email="bob@elsewhere.example")

    linked = await browser.link(owner)

    assert linked.status_code == 200, linked.text
    identity = linked.json()
    assert identity["provider"] == "acme"
    assert identity["email"] == "bob@elsewhere.example"
    assert identity["id"].startswith("aid_")
    assert await identities(browser, owner) == [identity]
    signed_in = await browser.signed_in()
    assert signed_in["user"]["id"] == owner["user"]["id"]


async def test_a_link_flow_may_end_on_the_front_end(browser: Browser) -> None:
    owner = await browser.auth.signup("bob@example.com")

    response = await browser.link(owner, body={"redirect_uri": FRONTEND})

    assert response.status_code == 302, response.text
    fragment = parse_qs(urlsplit(response.headers["location"]).fragment)
    assert fragment["linked"] == ["acme"]
    assert fragment["identity"][0].startswith("aid_")


async def test_linking_needs_a_signed_in_user_and_an_allowed_redirect(browser: Browser) -> None:
    owner = await browser.auth.signup("bob@example.com")

    assert_problem(await browser.client.post(f"{IDENTITIES}/acme"), 401, "core.unauthorized")
    refused = await browser.client.post(
        f"{IDENTITIES}/acme", headers=bearer(owner), json={"redirect_uri": "https://evil.example/"}
    )
    assert_problem(refused, 400, "auth.oauth_redirect_not_allowed")
    extra = await browser.client.post(
        f"{IDENTITIES}/acme", headers=bearer(owner), json={"unexpected": 1}
    )
    assert_problem(extra, 422, "core.validation_error")


async def test_a_provider_account_linked_to_someone_else_cannot_be_linked_again(
    browser: Browser,
) -> None:
    first = await browser.signed_in()  # alice's provider account → her own new account
    other = await browser.auth.signup("carol@example.com")

    response = await browser.link(other)

    assert_problem(response, 409, "auth.identity_taken")
    assert await identities(browser, other) == []
    assert len(await identities(browser, first)) == 1


async def test_linking_the_same_account_twice_is_harmless(browser: Browser) -> None:
    owner = await browser.auth.signup("bob@example.com")
    first = (await browser.link(owner)).json()

    again = await browser.link(owner)

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert len(await identities(browser, owner)) == 1


async def test_unlinking_an_identity(browser: Browser) -> None:
    owner = await browser.auth.signup("bob@example.com")
    identity = (await browser.link(owner)).json()

    response = await browser.client.delete(f"{IDENTITIES}/{identity['id']}", headers=bearer(owner))

    assert response.status_code == 204
    assert await identities(browser, owner) == []
    # the provider account now makes (or finds) an account of its own, not bob's
    assert (await browser.signed_in())["user"]["id"] != owner["user"]["id"]


async def test_the_last_way_to_sign_in_cannot_be_unlinked(browser: Browser) -> None:
    tokens = await browser.signed_in()  # an account made by the provider: no password
    [identity] = await identities(browser, tokens)

    response = await browser.client.delete(f"{IDENTITIES}/{identity['id']}", headers=bearer(tokens))

    assert_problem(response, 409, "auth.last_sign_in_method")
    assert len(await identities(browser, tokens)) == 1


async def test_with_a_second_provider_linked_the_first_can_go(browser: Browser) -> None:
    tokens = await browser.signed_in()
    browser.idp.account = Account(sub="4242")
    gh = await browser.link(tokens, provider="github")
    assert gh.status_code == 200, gh.text
    acme = next(i for i in await identities(browser, tokens) if i["provider"] == "acme")

    response = await browser.client.delete(f"{IDENTITIES}/{acme['id']}", headers=bearer(tokens))

    assert response.status_code == 204
    [left] = await identities(browser, tokens)
    assert left["provider"] == "github"
    again = await browser.client.delete(f"{IDENTITIES}/{left['id']}", headers=bearer(tokens))
    assert_problem(again, 409, "auth.last_sign_in_method")


async def test_another_users_identity_is_not_found(browser: Browser) -> None:
    alice = await browser.signed_in()
    [identity] = await identities(browser, alice)
    mallory = await browser.auth.signup("mallory@example.com")

    for identity_id in (identity["id"], "aid_01JD8X0000000000000000000Z", "nonsense"):
        response = await browser.client.delete(
            f"{IDENTITIES}/{identity_id}", headers=bearer(mallory)
        )
        assert_problem(response, 404, "auth.identity_not_found")
    assert len(await identities(browser, alice)) == 1


async def test_identities_need_a_signed_in_user(browser: Browser) -> None:
    assert_problem(await browser.client.get(IDENTITIES), 401, "core.unauthorized")
    assert_problem(
        await browser.client.delete(f"{IDENTITIES}/aid_01JD8X0000000000000000000Z"),
        401,
        "core.unauthorized",
    )


async def test_deleting_the_user_removes_its_identities(browser: Browser) -> None:
    tokens = await browser.signed_in()

    await browser.auth.execute('DELETE FROM "user" WHERE id = :id', id=tokens["user"]["id"])

    assert await browser.auth.rows("SELECT id FROM oauth_identity") == []
