"""Speaking to the providers: the authorization URL out, a proven account back.

Authlib builds the authorization request (with the PKCE S256 challenge); the code is
exchanged (with its verifier) over the project's httpx, not Authlib's httpx client, which
Authlib 1.9 deprecates in favour of an `httpx2` package this project does not use. What
comes back is turned into a `ProviderAccount`
only after it is proven: for OpenID Connect by the ID token (see `oidc.py`), for GitHub by
its API, asked with the access token the code was just exchanged for.

httpx, Authlib and joserfc come with the `oauth` extra (`pip install 'courtyard[oauth]'`).
Only `registry.py` imports this module and `oidc.py`, when a configured provider is first
used; configuring one without the extra is refused with the settings (`settings.py`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from plugins.oauth import errors
from plugins.oauth.config import (
    GITHUB_API_URL,
    GITHUB_AUTHORIZE_URL,
    GITHUB_TOKEN_URL,
    OAuthProviderConfig,
)

logger = logging.getLogger("courtyard.oauth")

# How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
SECRET_BASIC = "client_secret_basic"  # noqa: S105 - method names, not secrets
SECRET_POST = "client_secret_post"  # noqa: S105


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """Who the provider says signed in: `subject` is its stable id for the account."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str
    token_auth_method: str


class Provider(ABC):
    """One configured provider. Stateless apart from caches of public metadata."""

    def __init__(self, name: str, config: OAuthProviderConfig, timeout: float) -> None:
        self.name = name
        self.config = config
        self.timeout = timeout

    @property
    def kind(self) -> str:
        return self.config.kind

    @abstractmethod
    async def endpoints(self) -> Endpoints: ...

    @abstractmethod
    async def account(self, token: dict[str, Any], *, nonce: str) -> ProviderAccount:
        """The account the exchanged `token` proves; raises an AppError otherwise."""

    async def issuer(self) -> str | None:
        """The issuer the callback's `iss` parameter must name, if the provider sends one."""
        return None

    def extra_authorize_params(self, nonce: str) -> dict[str, str]:
        return {}

    async def authorization_url(
        self, *, callback_url: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        endpoints = await self.endpoints()
        return str(
            prepare_grant_uri(
                endpoints.authorization,
                client_id=self.config.client_id,
                response_type="code",
                redirect_uri=callback_url,
                scope=self.config.scope,
                state=state,
                code_challenge=create_s256_code_challenge(code_verifier),
                code_challenge_method="S256",
                **self.extra_authorize_params(nonce),
            )
        )

    async def sign_in(
        self, *, code: str, code_verifier: str, nonce: str, callback_url: str
    ) -> ProviderAccount:
        """Exchange the code (with the PKCE verifier) and prove the account."""
        token = await self.exchange(code, code_verifier, callback_url)
        if not isinstance(token.get("access_token"), str):
            raise errors.bad_account_data("the token response has no access_token")
        return await self.account(token, nonce=nonce)

    async def exchange(self, code: str, code_verifier: str, callback_url: str) -> dict[str, Any]:
        """The token endpoint's answer to the code (RFC 6749 §4.1.3, RFC 7636 §4.5): 400
        `auth.oauth_code_rejected` when it refuses, 502 when it fails or talks nonsense."""
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback_url,
            "code_verifier": code_verifier,
        }
        secret = self.config.client_secret.get_secret_value()
        auth: httpx.Auth | None = None
        if endpoints.token_auth_method == SECRET_BASIC:
            auth = httpx.BasicAuth(self.config.client_id, secret)
        else:
            form |= {"client_id": self.config.client_id, "client_secret": secret}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, auth=auth) as http:
                response = await http.post(
                    endpoints.token, data=form, headers={"Accept": "application/json"}
                )
            body = response.json() if response.status_code < 500 else None
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("%s token endpoint failed: %r", self.name, exc)
            raise errors.provider_unavailable() from None
        if not isinstance(body, dict):
            logger.warning("%s token endpoint: HTTP %s", self.name, response.status_code)
            raise errors.provider_unavailable()
        if "error" in body or response.status_code >= 400:
            # GitHub answers a bad code with 200 and an `error`.
            logger.info("%s refused the code: %.64r", self.name, body.get("error"))
            raise errors.code_rejected()
        return body

    async def get_json(self, url: str, access_token: str | None = None) -> Any:
        """GET a JSON document from the provider; 502 when it fails or is not JSON."""
        headers = {"Accept": "application/json"}
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(url, headers=headers)
                response.raise_for_status()
                return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("%s: GET %s failed: %r", self.name, url, exc)
            raise errors.provider_unavailable() from None


class GitHubProvider(Provider):
    """GitHub's OAuth 2.0 apps: no ID token, so the account comes from its REST API
    (`/user`, and `/user/emails` for the primary address and whether it is verified)."""

    async def endpoints(self) -> Endpoints:
        return Endpoints(
            authorization=self.config.authorize_url or GITHUB_AUTHORIZE_URL,
            token=self.config.token_url or GITHUB_TOKEN_URL,
            token_auth_method=SECRET_POST,
        )

    async def account(self, token: dict[str, Any], *, nonce: str) -> ProviderAccount:
        api = (self.config.api_url or GITHUB_API_URL).rstrip("/")
        access_token = token["access_token"]
        user = await self.get_json(f"{api}/user", access_token)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise errors.bad_account_data("GitHub's /user has no numeric id")
        emails = await self.get_json(f"{api}/user/emails", access_token)
        email, verified = _github_primary_email(emails)
        name = user.get("name") or user.get("login")
        return ProviderAccount(
            subject=str(user["id"]),
            email=email,
            email_verified=verified,
            name=name if isinstance(name, str) else None,
        )


def _github_primary_email(emails: Any) -> tuple[str | None, bool]:
    """The primary address and whether GitHub verified it; else any verified address."""
    if not isinstance(emails, list):
        return None, False
    entries = [e for e in emails if isinstance(e, dict) and isinstance(e.get("email"), str)]
    for entry in entries:
        if entry.get("primary") is True:
            return entry["email"], entry.get("verified") is True
    for entry in entries:
        if entry.get("verified") is True:
            return entry["email"], True
    return None, False
