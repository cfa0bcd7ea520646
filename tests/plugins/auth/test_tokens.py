"""Access tokens: what is accepted, and every forgery that must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import SecretStr

from plugins.auth.settings import AuthSettings
from plugins.auth.tokens import (
    VERIFIED_CACHE_SIZE,
    AccessTokens,
    InvalidTokenError,
    KeyConfigurationError,
    signing_key,
)

SECRET = SecretStr("s" * 48)
USER, SESSION = "usr_01JD8X0000000000000000000A", "ses_01JD8X0000000000000000000A"


def pem(private_key: Any) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


ED25519 = ed25519.Ed25519PrivateKey.generate()
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def tokens(**values: Any) -> AccessTokens:
    settings = AuthSettings.model_validate(values)
    return AccessTokens(settings, signing_key(settings, SECRET))


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "iss": "courtyard", "aud": "courtyard", "sub": USER, "sid": SESSION, "jti": "j1",
        "roles": ["user"], "typ": "access", "iat": now, "exp": now + timedelta(minutes=15),
    }  # fmt: skip
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize("key", [None, pem(ED25519), pem(RSA)], ids=["hs256", "ed25519", "rsa"])
def test_an_issued_token_decodes_to_its_claims(key: str | None) -> None:
    issuer = tokens(jwt_private_key=key)
    token = issuer.issue(USER, SESSION, frozenset({"user"}))

    decoded = issuer.decode(token)

    assert (decoded.user_id, decoded.session_id, decoded.roles) == (USER, SESSION, {"user"})
    remaining = decoded.expires_at - datetime.now(UTC)
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == {None: "HS256"}.get(key, header["alg"])


def test_an_hs256_token_has_a_plain_header_and_the_claims_a_verifier_expects() -> None:
    issuer = tokens()
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    token = issuer.issue(USER, SESSION, frozenset({"user", "admin"}), now=now)
    payload = jwt.decode(
        token, issuer.key.verifying, algorithms=["HS256"], options={"verify_exp": False},
        audience="courtyard", issuer="courtyard",
    )  # fmt: skip

    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}  # no kid
    assert set(payload) == {"iss", "aud", "sub", "sid", "jti", "roles", "typ", "iat", "exp"}
    assert (payload["sub"], payload["sid"], payload["typ"]) == (USER, SESSION, "access")
    assert payload["iat"] == int(now.timestamp())  # whole seconds since the epoch
    assert payload["exp"] == int(now.timestamp()) + 900
    assert payload["roles"] == ["admin", "user"]


def test_the_hs256_key_is_derived_not_the_secret_itself() -> None:
    token = tokens().issue(USER, SESSION, frozenset())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET.get_secret_value(), algorithms=["HS256"], audience="courtyard")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    other = AuthSettings()
    forged = AccessTokens(other, signing_key(other, SecretStr("t" * 48))).issue(
        USER, SESSION, frozenset({"admin"})
    )
    with pytest.raises(InvalidTokenError, match="Signature"):
        tokens().decode(forged)


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(iat=1, exp=2**31))}."
    with pytest.raises(InvalidTokenError):
        tokens().decode(unsigned)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: an attacker signs HS256 with the published RSA public key."""
    public_pem = RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64(claims(iat=int(datetime.now(UTC).timestamp()), exp=2**31))
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    with pytest.raises(InvalidTokenError, match="alg value is not allowed"):
        tokens(jwt_private_key=pem(RSA)).decode(forged)


def test_a_tampered_payload_is_refused() -> None:
    issuer = tokens()
    header, _, signature = issuer.issue(USER, SESSION, frozenset({"user"})).split(".")
    payload = b64(claims(roles=["admin"], iat=int(datetime.now(UTC).timestamp()), exp=2**31))
    with pytest.raises(InvalidTokenError, match="Signature"):
        issuer.decode(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, "audience doesn't match"),
        ({"iss": "someone-else"}, "issuer"),
        ({"exp": datetime.now(UTC) - timedelta(seconds=1)}, "expired"),
        ({"typ": "refresh"}, "not an access token"),
        ({"sid": None}, "sid"),
        ({"roles": None}, "roles"),
        ({"jti": None}, "jti"),
        ({"roles": "admin"}, "roles"),
        ({"sub": 42}, "sub"),
    ],
)
def test_claims_that_do_not_fit_are_refused(overrides: dict[str, Any], reason: str) -> None:
    token = jwt.encode(claims(**overrides), tokens().key.signing, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match=f"(?i){reason}"):
        tokens().decode(token)


def test_the_jwks_publishes_only_public_keys() -> None:
    assert tokens().jwks() is None  # a symmetric key is never published

    for private, algorithm in [(ED25519, "EdDSA"), (RSA, "RS256")]:
        issuer = tokens(jwt_private_key=pem(private))
        [jwk] = issuer.jwks()["keys"]  # type: ignore[index]
        assert jwk["alg"] == algorithm
        assert not {"d", "p", "q"} & set(jwk)  # no private parts
        token = issuer.issue(USER, SESSION, frozenset())
        assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
        public = jwt.PyJWK(jwk).key  # what another service would do with the JWKS
        decoded = jwt.decode(token, public, algorithms=[algorithm], audience="courtyard")
        assert decoded["sub"] == USER


@pytest.mark.parametrize(
    "key",
    [
        "not a key",
        pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
    ],
    ids=["garbage", "rsa-1024"],
)
def test_an_unusable_private_key_is_a_configuration_error(key: str) -> None:
    with pytest.raises(KeyConfigurationError, match="COURTYARD_AUTH__JWT_PRIVATE_KEY"):
        tokens(jwt_private_key=key)


def test_a_token_accepted_before_is_refused_once_it_expires() -> None:
    """Verified tokens are remembered, but their expiry is checked on every use."""
    issuer = tokens()
    # `exp` is in whole seconds: end on one 1-2 s ahead, so the token is valid at first.
    not_after = datetime.fromtimestamp(int(time.time()) + 2, UTC)
    token = issuer.issue(USER, SESSION, frozenset({"user"}), not_after=not_after)
    assert issuer.decode(token).user_id == USER
    assert issuer.decode(token).user_id == USER  # the remembered verification
    time.sleep(max(0.0, not_after.timestamp() + 0.05 - time.time()))
    with pytest.raises(InvalidTokenError, match="expired"):
        issuer.decode(token)
    with pytest.raises(InvalidTokenError, match="expired"):
        issuer.decode(token)  # and stays refused once forgotten


def test_remembered_tokens_are_bounded_and_a_forgotten_one_is_verified_again() -> None:
    issuer = tokens()
    first = issuer.issue(USER, SESSION, frozenset({"user"}))
    issuer.decode(first)
    for n in range(VERIFIED_CACHE_SIZE):
        issuer.decode(issuer.issue(f"usr_{n:026d}", SESSION, frozenset()))
    assert len(issuer._verified) == VERIFIED_CACHE_SIZE
    assert first not in issuer._verified
    assert issuer.decode(first).user_id == USER
    header, payload, signature = first.split(".")
    forged = ".".join(
        [header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")]
    )
    with pytest.raises(InvalidTokenError):
        issuer.decode(forged)
