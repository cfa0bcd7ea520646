"""The app (`user`, `auth` and `oauth`) with OAuth providers pointing at a real provider
served over HTTP, and a test "browser" that walks the redirects: Courtyard's authorize →
the provider's authorize (which approves at once) → Courtyard's callback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import AppFactory
from tests.plugins.auth.conftest import AuthApp, bearer
from tests.plugins.oauth.idp import IdP, ServedIdP

PLUGINS = "user,auth,mail,oauth"
OAUTH = "/api/v1/auth/oauth"
FRONTEND = "https://app.example.com/oauth/done"
ALLOWLIST = [FRONTEND, "https://admin.example.com/"]


@pytest.fixture(scope="session")
def served_idp() -> Iterator[IdP]:
    served = ServedIdP()
    try:
        yield served.start()
    finally:
        served.stop()


@pytest.fixture
def idp(served_idp: IdP) -> Iterator[IdP]:
    """The provider, forgetting every grant and misbehaviour of earlier tests."""
    served_idp.reset()
    yield served_idp
    served_idp.reset()


def oauth_settings(idp: IdP, **extra: Any) -> dict[str, Any]:
    """The `oauth` plugin's settings: providers `acme` (OpenID Connect) and `github`, both
    served by `idp`, and the front ends of `ALLOWLIST`; `extra` replaces any of them."""
    return {
        "providers": {"acme": idp.oidc_settings(), "github": idp.github_settings()},
        "redirect_allowlist": ALLOWLIST,
        **extra,
    }


@dataclass
class Browser:
    """Drives a sign-in as a browser would; `auth.client` keeps Courtyard's cookies."""

    auth: AuthApp
    idp: IdP

    @property
    def client(self) -> httpx.AsyncClient:
        return self.auth.client

    async def authorize(
        self, provider: str = "acme", redirect_uri: str | None = None
    ) -> httpx.Response:
        params = {"redirect_uri": redirect_uri} if redirect_uri is not None else {}
        return await self.client.get(f"{OAUTH}/{provider}/authorize", params=params)

    async def at_provider(self, authorization_url: str) -> str:
        """Visit the provider (over real HTTP); the callback URL it sends the browser to."""
        async with httpx.AsyncClient() as http:
            answer = await http.get(authorization_url)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith("http://testserver/"), location
        return location

    async def callback(
        self, location: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        parts = urlsplit(location)
        return await (client or self.client).get(f"{parts.path}?{parts.query}")

    async def returning(self, provider: str = "acme", redirect_uri: str | None = None) -> str:
        """Authorize and approve: the callback URL, not visited yet."""
        started = await self.authorize(provider, redirect_uri)
        assert started.status_code == 302, started.text
        return await self.at_provider(started.headers["location"])

    async def sign_in(
        self, provider: str = "acme", redirect_uri: str | None = None
    ) -> httpx.Response:
        return await self.callback(await self.returning(provider, redirect_uri))

    async def signed_in(self, provider: str = "acme") -> dict[str, Any]:
        response = await self.sign_in(provider)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def link(
        self, tokens: dict[str, Any], provider: str = "acme", body: Any = None
    ) -> httpx.Response:
        """Start a link flow as the signed-in user, approve it; the callback's answer."""
        started = await self.client.post(
            f"{OAUTH}/identities/{provider}", headers=bearer(tokens), json=body
        )
        assert started.status_code == 200, started.text
        location = await self.at_provider(started.json()["authorization_url"])
        return await self.callback(location)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def oauth_app(app_client: AppFactory, idp: IdP) -> Any:
    """`async with oauth_app(**oauth_settings) as browser:` — migrated and running, the
    providers `acme` (OpenID Connect) and `github` configured against the served provider;
    `auth={...}` for the `auth` plugin's settings."""

    @asynccontextmanager
    async def factory(
        *, auth: dict[str, Any] | None = None, **extra: Any
    ) -> AsyncIterator[Browser]:
        settings = {"auth": auth or {}, "oauth": oauth_settings(idp, **extra)}
        async with app_client(plugin_settings=settings, enabled_plugins=PLUGINS) as client:
            yield Browser(AuthApp(client), idp)

    return factory


@pytest.fixture
async def browser(oauth_app: Any) -> AsyncIterator[Browser]:
    async with oauth_app() as b:
        yield b
