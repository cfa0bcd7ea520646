"""A small but real OpenID Connect provider, and a fake GitHub, served over HTTP.

Both live in one Starlette app that uvicorn serves on a free 127.0.0.1 port from a
background thread. The provider checks what a real one checks (client credentials, the
registered redirect URI, PKCE S256 at the token endpoint, single-use codes) and signs RS256
ID tokens with a key it publishes as a JWKS. A test sets `IdP.account` (who "signs in":
the authorize endpoint approves at once) and may set `IdP.tamper` to make the provider
misbehave (another nonce, another key, a wrong `aud`...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "courtyard-test"
CLIENT_SECRET = "test-client-secret-9f3a"
GITHUB_CLIENT_ID = "gh-courtyard"
GITHUB_CLIENT_SECRET = "gh-secret-7c21"


@dataclass
class Account:
    """Who signs in at the provider."""

    sub: str = "alice-0001"
    email: str | None = "alice@example.com"
    email_verified: bool = True
    name: str = "Alice Liddell"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    nonce: str | None
    account: Account
    used: bool = False


@dataclass
class IdP:
    """The provider's state; `reset()` between tests."""

    key: RSAKey
    other_key: RSAKey
    base_url: str = ""
    account: Account = field(default_factory=Account)
    tamper: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Account] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    github_emails: list[dict[str, Any]] | None = None

    def reset(self) -> None:
        self.account = Account()
        self.tamper = {}
        self.grants.clear()
        self.tokens.clear()
        self.authorize_requests.clear()
        self.token_requests.clear()
        self.github_emails = None

    @property
    def public_pem(self) -> bytes:
        return self.key.as_pem(private=False)

    @property
    def issuer(self) -> str:
        return self.base_url

    def oidc_settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "kind": "oidc",
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **overrides,
        }

    def github_settings(self) -> dict[str, Any]:
        return {
            "kind": "github",
            "client_id": GITHUB_CLIENT_ID,
            "client_secret": GITHUB_CLIENT_SECRET,
            "authorize_url": f"{self.base_url}/github/login/oauth/authorize",
            "token_url": f"{self.base_url}/github/login/oauth/access_token",
            "api_url": f"{self.base_url}/github/api",
        }

    # Signing

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.account.sub,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "name": grant.account.name,
        }
        if grant.account.email is not None and not self.tamper.get("email_in_userinfo_only"):
            claims["email"] = grant.account.email
            claims["email_verified"] = grant.account.email_verified
        claims.update(self.tamper.get("claims", {}))
        key = self.other_key if self.tamper.get("sign_with_other_key") else self.key
        kid = self.tamper.get("kid", key.kid)
        if self.tamper.get("hs256_with_public_key"):
            # The classic confusion: HMAC keyed with the public key everyone can fetch.
            # (joserfc refuses to build such a key, so the token is put together by hand.)
            return _hs256({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, self.public_pem)
        return jwt.encode({"alg": "RS256", "kid": kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _oauth_error(error: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        decoded = base64.b64decode(header[6:]).decode()
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


def build_app(idp: IdP) -> Starlette:
    clients = {CLIENT_ID: CLIENT_SECRET, GITHUB_CLIENT_ID: GITHUB_CLIENT_SECRET}

    async def discovery(request: Request) -> Response:
        base = idp.base_url
        return JSONResponse(
            {
                "issuer": idp.tamper.get("discovery_issuer", idp.issuer),
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(request: Request) -> Response:
        return JSONResponse(KeySet([idp.key]).as_dict(private=False))

    def authorize_with(request: Request, *, pkce_required: bool) -> Response:
        params = dict(request.query_params)
        idp.authorize_requests.append(params)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id not in clients or not redirect_uri.startswith("http://testserver/"):
            return Response("unknown client or redirect_uri", status_code=400)
        back: dict[str, str] = {"state": params.get("state", "")}
        if params.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif pkce_required and params.get("code_challenge_method") != "S256":
            back["error"] = "invalid_request"
        elif idp.tamper.get("deny"):
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            idp.grants[code] = Grant(
                client_id=client_id,
                redirect_uri=redirect_uri,
                challenge=params.get("code_challenge"),
                nonce=params.get("nonce"),
                account=idp.account,
            )
            back["code"] = code
        if "iss" in idp.tamper:
            back["iss"] = idp.tamper["iss"]
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def authorize(request: Request) -> Response:
        return authorize_with(request, pkce_required=True)

    async def redeem(request: Request) -> tuple[Grant | None, JSONResponse | None]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        idp.token_requests.append(form)
        client_id, secret = _client_credentials(request, form)
        if client_id not in clients or clients[client_id] != secret:
            return None, _oauth_error("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return None, _oauth_error("unsupported_grant_type")
        grant = idp.grants.get(form.get("code", ""))
        if grant is None or grant.used or grant.client_id != client_id:
            return None, _oauth_error("invalid_grant")
        grant.used = True  # single use, whatever happens next
        if form.get("redirect_uri") != grant.redirect_uri:
            return None, _oauth_error("invalid_grant")
        verifier = form.get("code_verifier")
        if grant.challenge is not None and (verifier is None or _s256(verifier) != grant.challenge):
            return None, _oauth_error("invalid_grant")
        return grant, None

    async def token(request: Request) -> Response:
        grant, refused = await redeem(request)
        if refused is not None or grant is None:
            return refused or _oauth_error("invalid_grant")
        access = secrets.token_urlsafe(16)
        idp.tokens[access] = grant.account
        body = {"access_token": access, "token_type": "Bearer", "expires_in": 300}
        if not idp.tamper.get("no_id_token"):
            body["id_token"] = idp.id_token(grant)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def bearer_account(request: Request) -> Account | None:
        header = request.headers.get("authorization", "")
        return idp.tokens.get(header.removeprefix("Bearer ").strip())

    async def userinfo(request: Request) -> Response:
        account = bearer_account(request)
        if account is None:
            return Response(status_code=401)
        return JSONResponse(
            {
                "sub": idp.tamper.get("userinfo_sub", account.sub),
                "email": account.email,
                "email_verified": account.email_verified,
                "name": account.name,
            }
        )

    # The fake GitHub: OAuth 2.0 with a REST API, no OpenID Connect.

    async def github_authorize(request: Request) -> Response:
        return authorize_with(request, pkce_required=False)

    async def github_token(request: Request) -> Response:
        grant, refused = await redeem(request)
        if refused is not None or grant is None:
            # GitHub answers errors with 200 and an `error` field.
            return JSONResponse({"error": "bad_verification_code"})
        access = f"gho_{secrets.token_urlsafe(16)}"
        idp.tokens[access] = grant.account
        return JSONResponse({"access_token": access, "token_type": "bearer", "scope": "user"})

    async def github_user(request: Request) -> Response:
        account = bearer_account(request)
        if account is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            {"id": int(account.sub), "login": "octocat", "name": account.name, "email": None}
        )

    async def github_emails(request: Request) -> Response:
        account = bearer_account(request)
        if account is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        emails = idp.github_emails
        if emails is None:
            emails = [
                {"email": "octo@users.noreply.github.com", "primary": False, "verified": True},
                {"email": account.email, "primary": True, "verified": account.email_verified},
            ]
        return JSONResponse(emails)

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/userinfo", userinfo),
            Route("/github/login/oauth/authorize", github_authorize),
            Route("/github/login/oauth/access_token", github_token, methods=["POST"]),
            Route("/github/api/user", github_user),
            Route("/github/api/user/emails", github_emails),
        ]
    )


class ServedIdP:
    """`IdP` served by uvicorn on 127.0.0.1 from a daemon thread until `stop()`."""

    def __init__(self) -> None:
        self.idp = IdP(
            key=RSAKey.generate_key(2048, {"kid": "main-key"}),
            other_key=RSAKey.generate_key(2048, {"kid": "rogue-key"}),
        )
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.idp.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(build_app(self.idp), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> IdP:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test identity provider did not start")
            time.sleep(0.02)
        return self.idp

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
