"""The `oauth` plugin as the core sees it: registration, its routes where providers expect
them, the plugin contract, and the `auth` plugin standing without it."""

from __future__ import annotations

import pytest

from core.plugin import discover
from core.testing import assert_plugin_conforms
from core.testing.databases import backends
from tests.conftest import AppFactory
from tests.plugins.oauth.conftest import OAUTH, Browser

# Every route, where it was while this was part of the `auth` plugin, and where it is now.
ROUTES = {
    ("GET", f"{OAUTH}/providers"),
    ("GET", f"{OAUTH}/{{provider}}/authorize"),
    ("GET", f"{OAUTH}/{{provider}}/callback"),
    ("GET", f"{OAUTH}/identities"),
    ("POST", f"{OAUTH}/identities/{{provider_or_id}}"),
    ("DELETE", f"{OAUTH}/identities/{{provider_or_id}}"),
}


def test_registered_through_the_projects_entry_point() -> None:
    [oauth] = [p for p in discover() if p.name == "oauth"]
    assert oauth.distribution == "courtyard"
    assert oauth.entry_point.value == "plugins.oauth:plugin"
    plugin = oauth.load()
    assert (plugin.url_prefix, plugin.openapi_tag) == ("auth/oauth", "oauth")
    assert set(plugin.requires) == {"auth", "user"}


async def test_the_routes_are_where_providers_and_clients_expect_them(browser: Browser) -> None:
    """Stops: a provider's registered callback URL (`…/auth/oauth/<name>/callback`) or the
    sign-in URLs moving with the code, which would break every configured provider."""
    document = (await browser.client.get("/openapi.json")).json()

    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        if path.startswith(OAUTH)
        for method, operation in item.items()
    }
    assert set(operations) == ROUTES
    assert {tuple(operation["tags"]) for operation in operations.values()} == {("oauth",)}
    assert not [p for p in document["paths"] if p.startswith("/api/v1/auth/identities")]
    callback = operations[("GET", f"{OAUTH}/{{provider}}/callback")]
    assert (
        callback["operationId"] == "auth_oauth_callback_api_v1_auth_oauth__provider__callback_get"
    )


async def test_the_auth_plugin_alone_has_none_of_these_routes(app_client: AppFactory) -> None:
    async with app_client(enabled_plugins="user,auth,mail") as client:
        document = (await client.get("/openapi.json")).json()
        assert (await client.get(f"{OAUTH}/providers")).status_code == 404

    assert not [p for p in document["paths"] if "oauth" in p or "identities" in p]
    assert "oauth" not in {tag["name"] for tag in document.get("tags", [])}


@pytest.mark.parametrize("backend", backends())
def test_the_plugin_conforms(backend: str) -> None:
    """Tables carry its name, its branch goes up → down → up, its models match the
    migration, its routes are documented, it imports only `auth.api` and `user.api`."""
    assert_plugin_conforms("oauth", backend=backend)
