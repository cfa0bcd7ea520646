"""JWT access tokens: issued and checked with one pinned algorithm.

HS256 with a key derived from `COURTYARD_SECRET_KEY` by default. With
`COURTYARD_AUTH__JWT_PRIVATE_KEY` (a PEM Ed25519 or RSA key) tokens are signed with EdDSA
or RS256 and the public key is published as a JWKS, so other services can verify them.
Whatever the token's header says, only the configured algorithm is accepted: `alg: none`,
HS256 signed with a public key, or any other algorithm is refused.

The asymmetric keys need `cryptography` (the `keys` extra), imported only when a key is
configured: PyJWT imports it whenever it is installed, some 9 MiB the default HS256 app
does without.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, StrictStr, ValidationError

from plugins.auth.settings import AuthSettings

ACCESS = "access"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles", "typ"]
_HS256_LABEL = b"courtyard.auth.access-token.v1"


class InvalidTokenError(Exception):
    """The token is not one this app issued, or no longer valid; the message says why."""


class KeyConfigurationError(ValueError):
    """`COURTYARD_AUTH__JWT_PRIVATE_KEY` is not a usable PEM Ed25519 or RSA private key."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    roles: frozenset[str]
    token_id: str
    expires_at: datetime


# A NumericDate as this app writes it: whole seconds since the epoch, within what a
# datetime can hold (up to 9999-12-31T23:59:59Z).
EpochSeconds = Annotated[StrictInt, Field(ge=0, le=253_402_300_799)]


class _Claims(BaseModel):
    """The shape of an access token's claims, checked strictly once PyJWT has verified the
    signature, audience, issuer and times: the signature says who wrote the claims, not
    that their types are right (`"exp": "1700000000"` passes PyJWT's checks, which take
    anything `int()` accepts). `iss` and `aud` are PyJWT's to check."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: StrictStr
    sid: StrictStr
    jti: StrictStr
    typ: StrictStr
    roles: list[StrictStr]
    exp: EpochSeconds
    iat: EpochSeconds


@dataclass(frozen=True, slots=True)
class SigningKey:
    algorithm: str
    signing: Any
    verifying: Any
    key_id: str | None = None
    public_jwk: dict[str, Any] | None = None


def signing_key(settings: AuthSettings, secret_key: SecretStr) -> SigningKey:
    """The key tokens are signed and verified with (see the module docstring)."""
    if settings.jwt_private_key is None:
        key = hmac.new(secret_key.get_secret_value().encode(), _HS256_LABEL, hashlib.sha256)
        return SigningKey("HS256", key.digest(), key.digest())
    # Only with a key configured: AuthSettings made sure the `keys` extra is installed.
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

    try:
        private = load_pem_private_key(settings.jwt_private_key.get_secret_value().encode(), None)
    except (ValueError, TypeError) as exc:
        raise KeyConfigurationError(
            f"COURTYARD_AUTH__JWT_PRIVATE_KEY is not an unencrypted PEM private key: {exc}"
        ) from None
    if isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm, jwk = "EdDSA", OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise KeyConfigurationError("COURTYARD_AUTH__JWT_PRIVATE_KEY: RSA needs >= 2048 bits")
        algorithm, jwk = "RS256", RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        raise KeyConfigurationError(
            "COURTYARD_AUTH__JWT_PRIVATE_KEY must be an Ed25519 or RSA private key"
        )
    key_id = _thumbprint(jwk)
    # `use` only: RFC 7517 §4.3 says `use` and `key_ops` SHOULD NOT appear together.
    public = {k: v for k, v in jwk.items() if k != "key_ops"}
    public_jwk = {**public, "kid": key_id, "alg": algorithm, "use": "sig"}
    return SigningKey(algorithm, private, private.public_key(), key_id, public_jwk)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as the key id."""
    required = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


VERIFIED_CACHE_SIZE = 4096


class AccessTokens:
    """Issues and checks access tokens.

    A client sends the same access token with every request until it expires, so the
    claims of tokens already verified are kept (the most recent `VERIFIED_CACHE_SIZE`,
    keyed by the whole token): the signature and claims are checked once per token, the
    expiry on every use. Only the exact bytes of a token that passed every check can hit.
    """

    def __init__(self, settings: AuthSettings, key: SigningKey) -> None:
        self.settings = settings
        self.key = key
        self._verified: dict[str, tuple[float, AccessClaims]] = {}

    @property
    def ttl(self) -> int:
        return self.settings.access_token_ttl

    def issue(
        self,
        user_id: str,
        session_id: str,
        roles: frozenset[str],
        *,
        now: datetime | None = None,
        not_after: datetime | None = None,
    ) -> str:
        """A signed access token; it expires after the TTL, or at `not_after` (the end of
        its session) if that comes first."""
        issued = now or datetime.now(UTC)
        expires = issued + timedelta(seconds=self.ttl)
        if not_after is not None:
            expires = min(expires, not_after)
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": user_id,
            "iat": issued,
            "exp": expires,
            "jti": secrets.token_urlsafe(16),
            "sid": session_id,
            "roles": sorted(roles),
            "typ": ACCESS,
        }
        headers = {"kid": self.key.key_id} if self.key.key_id else None
        return jwt.encode(claims, self.key.signing, algorithm=self.key.algorithm, headers=headers)

    def decode(self, token: str) -> AccessClaims:
        """The claims of a valid access token; InvalidTokenError for anything else."""
        known = self._verified.get(token)
        if known is not None:
            expires, claims = known
            if time.time() < expires:
                return claims
            del self._verified[token]
            raise InvalidTokenError("Signature has expired")
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (claims.expires_at.timestamp(), claims)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self.key.verifying,
                algorithms=[self.key.algorithm],  # pinned: the header cannot choose
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        try:
            checked = _Claims.model_validate(claims)
        except ValidationError as exc:
            wrong = ", ".join(sorted({str(error["loc"][0]) for error in exc.errors()}))
            raise InvalidTokenError(f"claims of the wrong type or range: {wrong}") from None
        if checked.typ != ACCESS:
            raise InvalidTokenError(f"not an access token (typ={checked.typ!r})")
        return AccessClaims(
            user_id=checked.sub,
            session_id=checked.sid,
            roles=frozenset(checked.roles),
            token_id=checked.jti,
            expires_at=datetime.fromtimestamp(checked.exp, UTC),
        )

    def jwks(self) -> dict[str, Any] | None:
        """The public keys as a JWK Set; None with a symmetric (HS256) key, which is secret."""
        return {"keys": [self.key.public_jwk]} if self.key.public_jwk else None


OPAQUE_TOKEN_BYTES = 32  # 256 bits of randomness


def new_opaque_token() -> str:
    """An opaque token (a refresh token, a reset link's token): 256 random bits, URL-safe.
    Only its hash is ever stored."""
    return secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)


def opaque_token_hash(token: str) -> str:
    """What the database keeps of an opaque token (SHA-256, hex). A plain hash suffices:
    the token is 256 random bits, so nothing can be guessed or precomputed from it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
