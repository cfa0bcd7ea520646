"""OpenID Connect providers: discovery, the provider's keys, and the ID token's proof.

The discovery document and the JWKS are public and fetched on first use, then cached (an
unknown `kid` refetches the keys, at most every `JWKS_REFETCH_INTERVAL` seconds, so a
provider's key rotation is picked up and a stream of forged tokens cannot hammer it).
An ID token counts only when its signature verifies with one of those keys under an
asymmetric algorithm the provider announced (never `none`, never HMAC), and its `iss` is
the discovered issuer, its `aud` holds our client id (with `azp` when there are several),
it has not expired, and its `nonce` is the one this flow sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from plugins.oauth import errors
from plugins.oauth.providers import (
    SECRET_BASIC,
    SECRET_POST,
    Endpoints,
    Provider,
    ProviderAccount,
)

logger = logging.getLogger("courtyard.oauth")

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
METADATA_TTL = 3600.0
JWKS_TTL = 3600.0
JWKS_REFETCH_INTERVAL = 30.0
CLOCK_LEEWAY = 60
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class OidcProvider(Provider):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    @property
    def discovery_url(self) -> str:
        if self.config.discovery_url:
            return self.config.discovery_url
        return f"{(self.config.issuer or '').rstrip('/')}/.well-known/openid-configuration"

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached); 502 when it is unusable."""
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata_at < METADATA_TTL:
            return self._metadata
        document = await self.get_json(self.discovery_url)
        if not isinstance(document, dict) or not all(
            isinstance(document.get(key), str) for key in REQUIRED_METADATA
        ):
            logger.warning("%s: discovery document lacks %s", self.name, REQUIRED_METADATA)
            raise errors.provider_unavailable()
        if self.config.issuer and not _same_issuer(document["issuer"], self.config.issuer):
            # OpenID Connect Discovery 1.0 §4.3: a document for another issuer is refused.
            logger.warning("%s: discovery names another issuer", self.name)
            raise errors.provider_unavailable()
        self._metadata, self._metadata_at = document, now
        return document

    async def endpoints(self) -> Endpoints:
        meta = await self.metadata()
        supported = meta.get("token_endpoint_auth_methods_supported") or [SECRET_BASIC]
        method = SECRET_BASIC
        if SECRET_BASIC not in supported and SECRET_POST in supported:
            method = SECRET_POST
        return Endpoints(meta["authorization_endpoint"], meta["token_endpoint"], method)

    async def issuer(self) -> str | None:
        return str((await self.metadata())["issuer"])

    def extra_authorize_params(self, nonce: str) -> dict[str, str]:
        return {"nonce": nonce}

    async def keys(self, *, refresh: bool = False) -> KeySet:
        now = time.monotonic()
        fresh = self._keys is not None and now - self._keys_at < JWKS_TTL
        may_refetch = now - self._keys_at >= JWKS_REFETCH_INTERVAL
        if self._keys is not None and fresh and not (refresh and may_refetch):
            return self._keys
        document = await self.get_json((await self.metadata())["jwks_uri"])
        try:
            keys = KeySet.import_key_set(document)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: unusable JWKS: %r", self.name, exc)
            raise errors.provider_unavailable() from None
        self._keys, self._keys_at = keys, now
        return keys

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once every check in the module docstring passed."""
        meta = await self.metadata()
        announced = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in ASYMMETRIC_ALGORITHMS if alg in announced]
        if not algorithms:
            raise errors.invalid_id_token("the provider announces no asymmetric algorithm")
        try:
            try:
                token = jwt.decode(id_token, await self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, await self.keys(refresh=True), algorithms=algorithms)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise errors.invalid_id_token(_reason(exc, "its signature does not verify")) from None
        claims: dict[str, Any] = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY,
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise errors.invalid_id_token(_reason(exc, "a claim is wrong")) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise errors.invalid_id_token("several audiences and azp is not this client")
        if not 0 < len(claims["sub"]) <= 255:
            raise errors.invalid_id_token("sub is empty or too long")
        return claims

    async def account(self, token: dict[str, Any], *, nonce: str) -> ProviderAccount:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise errors.invalid_id_token("the token response has none")
        claims = await self.verify_id_token(id_token, nonce)
        userinfo_endpoint = (await self.metadata()).get("userinfo_endpoint")
        if not isinstance(claims.get("email"), str) and isinstance(userinfo_endpoint, str):
            info = await self.get_json(userinfo_endpoint, token["access_token"])
            # OpenID Connect Core §5.3.2: userinfo for another subject must not be used.
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                raise errors.bad_account_data("userinfo is about another subject")
            claims = {**info, **claims, "email": info.get("email")}
            claims["email_verified"] = info.get("email_verified")
        email = claims.get("email")
        name = claims.get("name") or claims.get("preferred_username")
        return ProviderAccount(
            subject=claims["sub"],
            email=email if isinstance(email, str) and email else None,
            email_verified=claims.get("email_verified") in (True, "true"),
            name=name if isinstance(name, str) else None,
        )


def _reason(exc: Exception, fallback: str) -> str:
    if isinstance(exc, JoseError) and exc.description:
        return f"{exc.error}: {exc.description}"
    if isinstance(exc, JoseError):
        return exc.error
    return fallback
