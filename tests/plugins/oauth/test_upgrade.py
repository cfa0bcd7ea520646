"""Upgrading a database of the release before the `oauth` plugin, whose `auth` plugin kept
the identities and flows in `auth_identity` and `auth_oauth_flow`: the oauth revision
moves them, every row kept, and a sign-in started before the upgrade finishes after it.
With oauth disabled, `auth` upgrades and works without them. Real Alembic, real databases.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from core.kernel import Kernel
from core.migrator import Migrator
from plugins.auth import models as _auth_models  # noqa: F401 - the tables in metadata
from plugins.oauth import models as _oauth_models  # noqa: F401
from plugins.user import models as _user_models  # noqa: F401
from tests.conftest import AppFactory, make_settings
from tests.plugins.auth.conftest import PASSWORD, AuthApp
from tests.plugins.oauth.conftest import OAUTH, PLUGINS, Browser
from tests.plugins.oauth.idp import CLIENT_ID
from tests.plugins.oauth.legacy import (
    FLOW_COLUMNS,
    IDENTITY_COLUMNS,
    LEGACY_TABLES,
    Legacy,
    legacy_database,
    rows,
)
from tests.support.databases import (
    fresh_database,
    inspect_database,
    model_differences,
    reflected_shape,
    tables,
)
from tests.support.problems import assert_problem

OAUTH_TABLES = ("oauth_identity", "oauth_flow")
OAUTH_REV = "e5f2a9b70001"
AUTH_REV = "b41c7d2e0003"


def migrator(url: str, plugins: str = PLUGINS) -> Migrator:
    return Migrator(Kernel.build(make_settings(url, enabled_plugins=plugins)))


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


async def shapes(url: str, names: tuple[str, ...]) -> dict[str, Any]:
    def reflect(connection: Any) -> dict[str, Any]:
        return {name: reflected_shape(connection, name) for name in names}

    return dict(await inspect_database(url, reflect))


async def fresh_shapes(url: str, folder: Path) -> dict[str, Any]:
    """The oauth tables as a new database gets them, on the backend of `url`."""
    async with fresh_database(backend(url), folder) as fresh:
        await migrator(fresh).upgrade()
        return await shapes(fresh, OAUTH_TABLES)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def finish_pending_flow(browser: Browser, legacy: Legacy) -> Any:
    """Approve the flow stored before the upgrade at the provider (as its browser would,
    with the parameters Courtyard sent it there with) and come back with its cookie."""
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": f"http://testserver{OAUTH}/acme/callback",
            "scope": "openid email profile",
            "state": legacy.state,
            "nonce": legacy.nonce,
            "code_challenge": s256(legacy.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    location = await browser.at_provider(f"{browser.idp.base_url}/authorize?{query}")
    parts = urlsplit(location)
    return await browser.client.get(
        f"{parts.path}?{parts.query}",
        headers={"Cookie": f"courtyard_oauth_browser={legacy.cookie}"},
    )


async def test_an_existing_database_keeps_its_identities_and_pending_flows(
    database_url: str, tmp_path: Path, oauth_app: Any
) -> None:
    legacy = await legacy_database(database_url)
    identities = await rows(database_url, "auth_identity", IDENTITY_COLUMNS)
    flows = await rows(database_url, "auth_oauth_flow", FLOW_COLUMNS)
    assert len(identities) == len(flows) == 1

    done = await migrator(database_url).upgrade()

    assert "oauth" in done
    found = await tables(database_url)
    assert set(OAUTH_TABLES) <= found
    assert not found & set(LEGACY_TABLES)
    assert await rows(database_url, "oauth_identity", IDENTITY_COLUMNS) == identities
    assert await rows(database_url, "oauth_flow", FLOW_COLUMNS) == flows
    # The moved tables are the very tables a new database gets: names of the constraints
    # and indexes (the naming convention's, for the new table names) included.
    assert await shapes(database_url, OAUTH_TABLES) == await fresh_shapes(database_url, tmp_path)
    assert await inspect_database(database_url, model_differences(OAUTH_TABLES)) == ([], [])
    states = {s.plugin: (s.current, s.head) for s in await migrator(database_url).states()}
    assert states["oauth"] == (OAUTH_REV, OAUTH_REV)
    assert states["auth"] == (AUTH_REV, AUTH_REV)

    async with oauth_app() as browser:
        response = await finish_pending_flow(browser, legacy)

        assert response.status_code == 200, response.text
        signed_in = response.json()
        assert signed_in["user"]["id"] == legacy.user_id  # through the moved identity
        me = await browser.auth.me(signed_in)
        assert me.status_code == 200, me.text
        [flow] = await rows(database_url, "oauth_flow", FLOW_COLUMNS)
        assert flow["used_at"] is not None
        [identity] = await rows(database_url, "oauth_identity", IDENTITY_COLUMNS)
        assert (identity["id"], identity["last_used_at"] is not None) == (legacy.identity_id, True)
        # spent: the same callback again is refused
        again = await finish_pending_flow(browser, legacy)
        assert_problem(again, 400, "auth.oauth_invalid_state")


async def test_with_oauth_disabled_auth_upgrades_and_works_and_the_rows_wait_for_oauth(
    database_url: str, app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await legacy_database(database_url)
    identities = await rows(database_url, "auth_identity", IDENTITY_COLUMNS)
    monkeypatch.setenv("COURTYARD_DISABLED_PLUGINS", "oauth")

    async with app_client(enabled_plugins=PLUGINS) as client:
        auth = AuthApp(client)
        assert client.app.state.kernel.plugin_names == ["mail", "user", "auth"]  # type: ignore[attr-defined]
        await auth.signup("bob@example.com")
        signed_in = await auth.login("bob@example.com", PASSWORD)
        assert signed_in.status_code == 200, signed_in.text
        assert (await auth.me(signed_in.json())).status_code == 200
        assert (await auth.refresh(signed_in.json()["refresh_token"])).status_code == 200
        assert (await client.get(f"{OAUTH}/providers")).status_code == 404

    found = await tables(database_url)
    assert set(LEGACY_TABLES) <= found
    assert not found & set(OAUTH_TABLES)
    assert await rows(database_url, "auth_identity", IDENTITY_COLUMNS) == identities

    monkeypatch.delenv("COURTYARD_DISABLED_PLUGINS")
    await migrator(database_url).upgrade()

    assert await rows(database_url, "oauth_identity", IDENTITY_COLUMNS) == identities
    assert not await tables(database_url) & set(LEGACY_TABLES)


async def test_a_new_database_with_oauth_disabled_has_no_oauth_tables_and_signs_in(
    database_url: str, app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops: `auth` needing the tables it no longer owns (its b41c7d2e0003 creates none)."""
    monkeypatch.setenv("COURTYARD_DISABLED_PLUGINS", "oauth")

    async with app_client(enabled_plugins=PLUGINS) as client:
        auth = AuthApp(client)
        tokens = await auth.signup("carol@example.com")
        assert (await auth.me(tokens)).status_code == 200
        signed_in = await auth.login("carol@example.com", PASSWORD)
        assert signed_in.status_code == 200, signed_in.text
        for path in ("providers", "acme/authorize", "identities"):
            assert (await client.get(f"{OAUTH}/{path}")).status_code == 404

    found = await tables(database_url)
    assert not found & {*OAUTH_TABLES, *LEGACY_TABLES}
    states = {s.plugin: s for s in await migrator(database_url, "user,auth,mail").states()}
    assert (states["auth"].current, states["auth"].at_head) == (AUTH_REV, True)
    assert (states["oauth"].enabled, states["oauth"].current) == (False, None)


async def test_a_new_database_gets_the_oauth_tables_created(database_url: str) -> None:
    done = await migrator(database_url).upgrade()

    assert done == ["user", "auth", "oauth"]
    found = await tables(database_url)
    assert set(OAUTH_TABLES) <= found
    assert not found & set(LEGACY_TABLES)
