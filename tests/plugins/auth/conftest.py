"""An app with the `user`, `auth` and `mail` plugins, and helpers that speak to it like a
client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy import text

from plugins.auth.passwords import PasswordHasherService
from tests.conftest import AppFactory
from tests.support.problems import assert_problem

AUTH = "/api/v1/auth"
ME = "/api/v1/users/me"
PLUGINS = "user,auth,mail"  # auth requires mail: its reset and verification mails
# Long enough, and in no common-password list.
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different, longer passphrase"


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    """The Authorization header for an access token (or a token response holding one)."""
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


@dataclass
class AuthApp:
    client: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    @property
    def container(self) -> Any:
        return self.app.state.kernel.container_of("auth")

    def client_from(self, ip: str) -> httpx.AsyncClient:
        """Another client of the same app whose requests come from `ip` (close it after)."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def signup(
        self, email: str, password: str = PASSWORD, name: str = "Test User"
    ) -> dict[str, Any]:
        """Sign up through the API; the 201 body (user and tokens)."""
        response = await self.client.post(
            f"{AUTH}/signup", json={"email": email, "password": password, "name": name}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(
        self, email: str, password: str = PASSWORD, *, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        return await (client or self.client).post(
            f"{AUTH}/login", json={"email": email, "password": password}
        )

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post(f"{AUTH}/refresh", json={"refresh_token": refresh_token})

    async def logout(self, refresh_token: str) -> httpx.Response:
        return await self.client.post(f"{AUTH}/logout", json={"refresh_token": refresh_token})

    async def me(self, tokens: dict[str, Any] | str) -> httpx.Response:
        return await self.client.get(ME, headers=bearer(tokens))

    async def user_service(self, work: Callable[[Any], Any]) -> Any:
        """Run `work(service)` with the `user` plugin's service, as an admin's tool would."""
        return await work(self.app.state.kernel.container_of("user").service())

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows straight from the database, to check what was really stored."""
        async with self.app.state.database.write_engine.connect() as connection:
            result = await connection.execute(text(query), params)
            return [tuple(row) for row in result.all()]

    async def execute(self, statement: str, **params: Any) -> None:
        """Change the database behind the app's back (e.g. to age a session)."""
        async with self.app.state.database.write_engine.begin() as connection:
            await connection.execute(text(statement), params)


AuthAppFactory = Callable[..., AbstractAsyncContextManager[AuthApp]]


@contextmanager
def hasher_of(auth: AuthApp, make: Callable[..., PasswordHasherService]) -> Iterator[Any]:
    """Run the app's auth service with another (real) hasher, through the container."""
    container = auth.container
    hasher = make(container.settings())
    # The override's context undoes this override only, not any the app made itself.
    with container.hasher.override(providers.Object(hasher)):
        container.service.reset()  # the service singleton is rebuilt around the override
        try:
            yield hasher
        finally:
            container.service.reset()


async def assert_signed_out(auth: AuthApp, tokens: dict[str, Any]) -> None:
    """Neither the access token nor the refresh token of `tokens` works any more."""
    assert_problem(await auth.me(tokens), 401, "core.unauthorized")
    listed = await auth.client.get(f"{AUTH}/sessions", headers=bearer(tokens))
    assert_problem(listed, 401, "core.unauthorized")
    assert_problem(await auth.refresh(tokens["refresh_token"]), 401, "auth.invalid_refresh_token")


async def assert_signed_in(auth: AuthApp, tokens: dict[str, Any]) -> dict[str, Any]:
    """The access token works and the refresh token trades for a new pair (returned)."""
    me = await auth.me(tokens)
    assert me.status_code == 200, me.text
    refreshed = await auth.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    body: dict[str, Any] = refreshed.json()
    return body


@pytest.fixture
def auth_app(app_client: AppFactory) -> AuthAppFactory:
    """`async with auth_app(login_limit_per_account="3/minute") as app:` — `auth` settings
    as keywords; `mail={...}` for the `mail` plugin's (`{"smtp_url": ...}`), `core={...}`
    for core settings. Migrated and running."""

    @asynccontextmanager
    async def factory(
        *, core: dict[str, Any] | None = None, mail: dict[str, Any] | None = None, **auth: Any
    ) -> AsyncIterator[AuthApp]:
        options = {"enabled_plugins": PLUGINS, **(core or {})}
        settings = {"auth": auth} if mail is None else {"auth": auth, "mail": mail}
        async with app_client(plugin_settings=settings, **options) as client:
            yield AuthApp(client)

    return factory


@pytest.fixture
async def auth(auth_app: AuthAppFactory) -> AsyncIterator[AuthApp]:
    """The app with default settings."""
    async with auth_app() as app:
        yield app


@pytest.fixture
def mail_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port, keeping what it receives:
    a `tests.plugins.mail.smtp_support.MailServer`."""
    from tests.plugins.mail.smtp_support import smtp_server

    with smtp_server() as server:
        yield server


@pytest.fixture
async def mailing(auth_app: AuthAppFactory, mail_server: Any) -> AsyncIterator[AuthApp]:
    """The app, mailing through the test's SMTP server (`mail_server`)."""
    async with auth_app(mail={"smtp_url": mail_server.url()}) as app:
        yield app
