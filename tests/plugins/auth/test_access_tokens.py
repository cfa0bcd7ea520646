"""Access tokens as a client meets them: every request to GET /api/v1/users/me.

`test_tokens.py` checks `AccessTokens` on its own; these tests go through HTTP, so they
prove the whole chain (the bearer header, the `authenticate` hook, the revoked-session
set, the `user` plugin's account check) refuses each forgery, and that keys, JWKS,
revocation across instances and role changes behave as documented. Each test names the
attack or failure it stops.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import make_settings
from tests.plugins.auth.conftest import (
    ME,
    PASSWORD,
    PLUGINS,
    AuthApp,
    AuthAppFactory,
    bearer,
)
from tests.support.problems import assert_problem
from tests.support.statements import sent_statements

USERS = "/api/v1/users"
JWKS = "/api/v1/auth/jwks.json"
SETTING = "COURTYARD_AUTH__JWT_PRIVATE_KEY"

ED25519 = ed25519.Ed25519PrivateKey.generate()
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_ED25519 = ed25519.Ed25519PrivateKey.generate()


def pem(private_key: Any) -> str:
    data: bytes = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data.decode()


def public_pem(private_key: Any, form: serialization.PublicFormat) -> bytes:
    data: bytes = private_key.public_key().public_bytes(serialization.Encoding.PEM, form)
    return data


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(data: dict[str, Any]) -> str:
    return b64(json.dumps(data, separators=(",", ":")).encode())


def hs256(claims: dict[str, Any], secret: bytes, header: dict[str, Any] | None = None) -> str:
    """A JWT signed HS256 with any bytes as the secret, made by hand: pyjwt refuses to use
    a PEM key as an HMAC secret, which is exactly what an attacker would do."""
    signing_input = f"{b64json(header or {'alg': 'HS256', 'typ': 'JWT'})}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, unverified: what an attacker can read from a token they hold."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def assert_unauthorized(response: httpx.Response) -> None:
    """What every refused token looks like: unauthenticated, nothing more said."""
    assert_problem(response, 401, "core.unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def hs256_key(app: AuthApp) -> bytes:
    """The app's own HS256 key (derived from the secret key), to sign claims it must refuse."""
    key: bytes = app.container.signing_key().signing
    return key


# The happy path and the header


async def test_a_valid_token_reads_the_account(auth: AuthApp) -> None:
    """The baseline every forgery below is measured against: a token the app issued works,
    with the scheme name in any case (RFC 7235: auth schemes are case-insensitive)."""
    signed_in = await auth.signup("valid@example.com")

    for scheme in ["Bearer", "bearer", "BEARER"]:
        headers = {"Authorization": f"{scheme} {signed_in['access_token']}"}
        response = await auth.client.get(ME, headers=headers)
        assert response.status_code == 200, (scheme, response.text)
        assert response.json()["id"] == signed_in["user"]["id"]


async def test_no_token_is_unauthenticated_with_a_bearer_challenge(auth: AuthApp) -> None:
    """Stops anonymous access to a protected route, and tells clients (RFC 6750 §3) which
    scheme to use: 401 with `WWW-Authenticate: Bearer`."""
    assert_unauthorized(await auth.client.get(ME))


async def test_other_authorization_headers_are_unauthenticated(auth: AuthApp) -> None:
    """Stops a malformed or foreign Authorization header (Basic credentials, a bare
    token, another scheme) from being taken for a bearer token or crashing the check."""
    signed_in = await auth.signup("scheme@example.com")
    token = signed_in["access_token"]

    for value in [
        "Basic dmFsaWRAZXhhbXBsZS5jb206cGFzc3dvcmQ=",
        "Bearer",
        "Bearer ",
        f"Token {token}",
        token,
        f"Bearer{token}",
    ]:
        response = await auth.client.get(ME, headers={"Authorization": value})
        assert_unauthorized(response)


# Forgeries of an HS256 token


async def test_claims_re_signed_with_the_right_key_are_accepted(auth: AuthApp) -> None:
    """The control for the forgeries below: the same hand-made token, signed with the
    app's real key and unchanged claims, is accepted, so each 401 below comes from the
    one thing the forgery changed, not from how the test builds tokens."""
    signed_in = await auth.signup("control@example.com")
    claims = claims_of(signed_in["access_token"])

    assert (await auth.me(hs256(claims, hs256_key(auth)))).status_code == 200
    assert (await auth.me(jwt.encode(claims, hs256_key(auth), "HS256"))).status_code == 200


async def test_an_unsigned_alg_none_token_is_refused(auth: AuthApp) -> None:
    """Stops the `alg: none` attack (CVE-2015-9235 family): a token that declares itself
    unsigned, with otherwise perfect claims, with no signature or with a real one kept,
    whatever the spelling of "none"."""
    signed_in = await auth.signup("none@example.com")
    claims = claims_of(signed_in["access_token"])
    real_signature = signed_in["access_token"].rsplit(".", 1)[1]

    for alg in ["none", "None", "NONE", "nOnE"]:
        unsigned = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(claims)}"
        for token in [f"{unsigned}.", f"{unsigned}.{real_signature}", unsigned]:
            assert_unauthorized(await auth.me(token))
    assert_unauthorized(await auth.me(jwt.encode(claims, "", algorithm="none")))


async def test_a_tampered_payload_is_refused(auth: AuthApp) -> None:
    """Stops impersonation and privilege escalation by editing a real token: another
    user's `sub`, or `roles: ["admin"]`, with the original (now wrong) signature."""
    mine = await auth.signup("mallory@example.com")
    victim = await auth.signup("victim@example.com")
    header, _, signature = mine["access_token"].split(".")
    claims = claims_of(mine["access_token"])

    for changes in [{"sub": victim["user"]["id"]}, {"roles": ["admin"]}]:
        forged = f"{header}.{b64json({**claims, **changes})}.{signature}"
        assert_unauthorized(await auth.me(forged))
        assert_unauthorized(await auth.client.get(USERS, headers=bearer(forged)))


async def test_a_token_signed_with_another_key_is_refused(auth: AuthApp) -> None:
    """Stops tokens minted with a guessed or foreign key (another deployment's secret,
    the raw COURTYARD_SECRET_KEY instead of the derived key, an empty key)."""
    signed_in = await auth.signup("wrongkey@example.com")
    claims = claims_of(signed_in["access_token"])
    secret = auth.app.state.kernel.settings.secret_key.get_secret_value().encode()

    for key in [b"another deployment's secret key, 32+ bytes", secret, b""]:
        assert_unauthorized(await auth.me(hs256(claims, key)))


def _without(claim: str) -> Any:
    return lambda claims: {k: v for k, v in claims.items() if k != claim}


def _with(**changes: Any) -> Any:
    return lambda claims: {**claims, **changes}


def _expired(claims: dict[str, Any]) -> dict[str, Any]:
    issued = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    return {**claims, "iat": issued, "exp": issued + 900}


REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles", "typ"]
WRONG_CLAIMS: dict[str, Any] = {
    "aud": _with(aud="another-service"),
    "aud-list": _with(aud=["another-service"]),
    "iss": _with(iss="https://attacker.example"),
    "expired": _expired,
    "typ-refresh": _with(typ="refresh"),
    "typ-id": _with(typ="id"),
    "roles-string": _with(roles="admin"),
    "sub-number": _with(sub=12345),
    **{f"missing-{claim}": _without(claim) for claim in REQUIRED},
}


async def test_a_correctly_signed_token_with_wrong_claims_is_refused(auth: AuthApp) -> None:
    """Stops tokens the app's key really signed but that are not valid access tokens here:
    meant for another audience or issuer (a token for a sibling service replayed against
    this one), expired, of another type, malformed, or missing any claim the checks rely
    on (no `sid` would escape revocation, no `exp` would never expire). Signed with the
    RIGHT key, so only the claims are at fault (see the control test above)."""
    signed_in = await auth.signup("claims@example.com")
    claims = claims_of(signed_in["access_token"])

    for case, change in WRONG_CLAIMS.items():
        forged = jwt.encode(change(claims), hs256_key(auth), "HS256")
        response = await auth.me(forged)
        assert response.status_code == 401, (case, response.text)
        assert_unauthorized(response)


async def test_a_refresh_token_is_not_an_access_token(auth: AuthApp) -> None:
    """Stops token-type confusion the other way round: the opaque refresh token (a
    long-lived secret meant only for /refresh) does not authenticate requests."""
    signed_in = await auth.signup("opaque@example.com")

    assert_unauthorized(await auth.me(signed_in["refresh_token"]))


async def test_garbage_bearer_tokens_are_unauthenticated(auth: AuthApp) -> None:
    """Stops malformed tokens from turning into 500s (a crash is an oracle and a DoS)."""
    for garbage in ["a.b.c", "...", "x" * 8000, "eyJhbGciOiJIUzI1NiJ9.e30.", "é.é.é"]:
        header = f"Bearer {garbage}".encode()  # bytes: httpx would refuse non-ASCII text
        response = await auth.client.get(ME, headers={b"Authorization": header})
        assert response.status_code == 401, (garbage[:20], response.text)
        assert_unauthorized(response)


# Asymmetric keys: algorithm confusion and the JWKS


@pytest.mark.parametrize(
    "form",
    [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1],
    ids=["spki", "pkcs1"],
)
async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    auth_app: AuthAppFactory, form: serialization.PublicFormat
) -> None:
    """Stops RS256/HS256 algorithm confusion (CVE-2016-10555 family): the public key is
    public, so a verifier that let the header pick HS256 would check an attacker's HMAC
    with it. The app pins RS256."""
    async with auth_app(jwt_private_key=pem(RSA)) as app:
        signed_in = await app.signup("confusion@example.com")
        claims = claims_of(signed_in["access_token"])
        assert jwt.get_unverified_header(signed_in["access_token"])["alg"] == "RS256"
        jwk = (await app.client.get(JWKS)).json()["keys"][0]
        header = {"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}

        for secret in [public_pem(RSA, form), json.dumps(jwk).encode()]:
            assert_unauthorized(await app.me(hs256(claims, secret, header)))
        assert_unauthorized(await app.me(jwt.encode(claims, "", algorithm="none")))
        resigned = jwt.encode(claims, RSA, "RS256", headers={"kid": jwk["kid"]})
        assert (await app.me(resigned)).status_code == 200  # control: the real key works


async def test_an_eddsa_app_accepts_only_its_own_eddsa_signatures(
    auth_app: AuthAppFactory,
) -> None:
    """Stops algorithm substitution and key injection on an Ed25519 app: an RS256 token
    (attacker's RSA key), HS256 keyed with the Ed25519 public key, and an EdDSA token
    signed by the attacker's own key with that key embedded in a `jwk` header
    (CVE-2018-0114 style) are all refused."""
    async with auth_app(jwt_private_key=pem(ED25519)) as app:
        signed_in = await app.signup("eddsa@example.com")
        claims = claims_of(signed_in["access_token"])
        kid = jwt.get_unverified_header(signed_in["access_token"])["kid"]
        attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ATTACKER_ED25519.public_key()))
        forgeries = [
            jwt.encode(claims, ATTACKER_RSA, "RS256", headers={"kid": kid}),
            hs256(
                claims,
                public_pem(ED25519, serialization.PublicFormat.SubjectPublicKeyInfo),
                {"alg": "HS256", "kid": kid},
            ),
            jwt.encode(
                claims, ATTACKER_ED25519, "EdDSA", headers={"kid": kid, "jwk": attacker_jwk}
            ),
        ]

        for forged in forgeries:
            assert_unauthorized(await app.me(forged))
        resigned = jwt.encode(claims, ED25519, "EdDSA", headers={"kid": kid})
        assert (await app.me(resigned)).status_code == 200  # control: the real key works


def _later(seconds: int) -> int:
    return int(time.time()) + seconds


# Claims of the wrong type or shape, each in a token the app's own key signed.
MISTYPED_CLAIMS: dict[str, Any] = {
    "exp-numeric-string": _with(exp=str(_later(600))),
    "exp-float-string": _with(exp=f"{_later(600)}.5"),
    "exp-list": _with(exp=[_later(600)]),
    "exp-object": _with(exp={"at": _later(600)}),
    "exp-bool": _with(exp=True),
    "exp-huge": _with(exp=10**30),
    "exp-past-year-9999": _with(exp=253402300800),
    "exp-negative-huge": _with(exp=-(10**30)),
    "exp-infinity": _with(exp=float("inf")),
    "exp-nan": _with(exp=float("nan")),
    "exp-fraction": _with(exp=_later(600) + 0.5),
    "iat-numeric-string": _with(iat=str(int(time.time()))),
    "iat-bool": _with(iat=True),
    "iat-fraction": _with(iat=int(time.time()) - 0.5),
    "iat-list": _with(iat=[int(time.time())]),
    "iat-huge": _with(iat=10**30),
    "iat-negative-huge": _with(iat=-(10**30)),
    "roles-string": _with(roles="admin"),
    "roles-numbers": _with(roles=[1, 2]),
    "roles-nested": _with(roles=[["admin"]]),
    "roles-object": _with(roles={"admin": True}),
    "roles-null": _with(roles=None),
    "sub-number": _with(sub=12345),
    "sub-list": _with(sub=["usr_1"]),
    "sub-huge": _with(sub=10**40),
    "sid-number": _with(sid=7),
    "sid-object": _with(sid={"id": "x"}),
    "sid-null": _with(sid=None),
    "jti-number": _with(jti=1),
    "typ-list": _with(typ=["access"]),
    "iss-list": _with(iss=["courtyard"]),
}


async def test_a_validly_signed_token_with_mistyped_claims_is_a_401_not_a_500(
    auth_app: AuthAppFactory,
) -> None:
    """Stops a crash on claims the signature vouches for but whose types are wrong (a
    numeric string as `exp` was a 500): whoever holds the signing key, or a bug in another
    issuer sharing it, must not be able to break the server. Signed with the app's own
    Ed25519 key and `kid`, so only the claim's type or size is at fault."""
    async with auth_app(jwt_private_key=pem(ED25519)) as app:
        signed_in = await app.signup("mistyped@example.com")
        claims = claims_of(signed_in["access_token"])
        kid = jwt.get_unverified_header(signed_in["access_token"])["kid"]

        for case, change in MISTYPED_CLAIMS.items():
            # Signed as raw JSON: `jwt.encode` itself refuses some of these shapes.
            payload = json.dumps(change(claims)).encode()
            forged = jwt.PyJWS().encode(payload, ED25519, "EdDSA", headers={"kid": kid})
            response = await app.me(forged)
            assert response.status_code == 401, (case, response.text)
            assert_unauthorized(response)
        resigned = jwt.encode(claims, ED25519, "EdDSA", headers={"kid": kid})
        assert (await app.me(resigned)).status_code == 200  # control: the claims as issued


def _thumbprint(jwk: dict[str, Any], members: tuple[str, ...]) -> str:
    """RFC 7638, computed here independently of the plugin."""
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


@pytest.mark.parametrize(
    ("key", "members", "algorithm"),
    [
        (ED25519, {"kty": "OKP", "crv": "Ed25519"}, "EdDSA"),
        (RSA, {"kty": "RSA", "e": "AQAB"}, "RS256"),
    ],
    ids=["ed25519", "rsa"],
)
async def test_the_jwks_lets_another_service_verify_tokens(
    auth_app: AuthAppFactory, key: Any, members: dict[str, str], algorithm: str
) -> None:
    """Stops two failures of the published key set: leaking private key material (`d`,
    and RSA's `p`, `q`, `dp`, `dq`, `qi`) and publishing a key that does not verify the
    app's tokens. A third party verifies an issued token with nothing but the JWKS."""
    async with auth_app(jwt_private_key=pem(key)) as app:
        signed_in = await app.signup("jwks@example.com")

        response = await app.client.get(JWKS)

        assert response.status_code == 200, response.text
        [jwk] = response.json()["keys"]
        assert set(response.json()) == {"keys"}
        public = {"x"} if members["kty"] == "OKP" else {"n", "e"}
        # pyjwt adds `key_ops: ["verify"]` to RSA keys: allowed, as long as it is verify-only.
        assert set(jwk) - {"key_ops"} == {"kty", "kid", "alg", "use"} | set(members) | public
        assert jwk.get("key_ops", ["verify"]) == ["verify"]
        assert jwk.items() >= {**members, "alg": algorithm, "use": "sig"}.items()
        required = ("crv", "kty", "x") if members["kty"] == "OKP" else ("e", "kty", "n")
        assert jwk["kid"] == _thumbprint(jwk, required)

        token = signed_in["access_token"]
        assert jwt.get_unverified_header(token) == {
            "alg": algorithm,
            "typ": "JWT",
            "kid": jwk["kid"],
        }
        verified = jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[algorithm],
            audience="courtyard",
            issuer="courtyard",
        )
        assert verified["sub"] == signed_in["user"]["id"]
        assert verified["typ"] == "access"


async def test_with_a_shared_secret_there_is_no_jwks(auth: AuthApp) -> None:
    """Stops the HS256 key (a secret: whoever has it can mint tokens) from ever being
    published: with no private key configured, the JWKS is a 404 that says why."""
    body = assert_problem(await auth.client.get(JWKS), 404, "auth.no_public_keys")
    assert "HS256" in body["detail"]
    assert hs256_key(auth).hex() not in json.dumps(body)


# A bad key stops startup


def _encrypted_pem() -> str:
    return ED25519.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("not a pem", "not an unencrypted PEM private key"),
        (
            pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
            "2048 bits",
        ),
        (pem(ec.generate_private_key(ec.SECP256R1())), "Ed25519 or RSA"),
        (_encrypted_pem(), "not an unencrypted PEM private key"),
        (public_pem(RSA, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), "PEM"),
    ],
    ids=["garbage", "rsa-1024", "ec-p256", "encrypted", "public-key"],
)
def test_an_unusable_signing_key_stops_startup_with_one_line(
    database_url: str, key: str, says: str
) -> None:
    """Stops an app from starting with a signing key it cannot use (every login would
    fail later) or a weak one (RSA-1024 is factorable): startup fails at once with one
    line naming the setting, and the message never echoes the key material."""
    settings = make_settings(database_url, enabled_plugins=PLUGINS)

    with pytest.raises(ConfigurationError) as raised:
        create_app(settings, plugin_settings={"auth": {"jwt_private_key": key}})

    message = str(raised.value)
    assert SETTING in message
    assert says in message
    assert "\n" not in message
    body = [line for line in key.splitlines() if line and not line.startswith("-----")]
    assert not any(line in message for line in body if len(line) > 8)


# Revocation across instances, without a query per request


async def test_a_logout_reaches_another_instance_within_the_interval(
    auth_app: AuthAppFactory,
) -> None:
    """Stops a revoked session from living on at other instances: logged out on A, its
    access token stops working on B (same database) once B reloads its revoked set —
    within `revocation_check_interval` — and never works again there."""
    async with (
        auth_app(revocation_check_interval=0.5) as a,
        auth_app(revocation_check_interval=0.5) as b,
    ):
        signed_in = await a.signup("twice@example.com")
        assert (await b.me(signed_in["access_token"])).status_code == 200

        assert (await a.logout(signed_in["refresh_token"])).status_code == 204

        assert_unauthorized(await a.me(signed_in["access_token"]))  # at once where revoked
        deadline = time.monotonic() + 3
        while (response := await b.me(signed_in["access_token"])).status_code == 200:
            assert time.monotonic() < deadline, "B still accepts the revoked session's token"
            await asyncio.sleep(0.1)
        assert_unauthorized(response)
        await asyncio.sleep(0.6)  # past another reload: the revocation is not forgotten
        for _ in range(3):
            assert_unauthorized(await b.me(signed_in["access_token"]))


async def test_checking_revocation_costs_no_query_per_request(auth_app: AuthAppFactory) -> None:
    """Stops the revocation check from becoming a database query on every request (load
    that grows with traffic): within the interval, B answers ten authenticated requests
    without once reading `auth_session`. The `user` plugin's account check is expected."""
    async with (
        auth_app(revocation_check_interval=60) as a,
        auth_app(revocation_check_interval=60) as b,
    ):
        signed_in = await a.signup("cheap@example.com")
        engine = b.app.state.database.write_engine
        async with sent_statements(engine) as first:
            assert (await b.me(signed_in["access_token"])).status_code == 200
        # The control: B's first request loads the revoked set, and the listener sees it.
        assert len([s for s in first if "auth_session" in s]) == 1, first

        async with sent_statements(engine) as seen:
            for _ in range(10):
                assert (await b.me(signed_in["access_token"])).status_code == 200

        # The `user` plugin's account check is expected ("user" is quoted on PostgreSQL).
        assert any("FROM user " in s.replace('"', "") for s in seen), seen
        assert not [s for s in seen if "auth_session" in s], seen


# The current role, not the token's


async def test_a_demoted_admin_loses_admin_rights_on_the_next_request(auth: AuthApp) -> None:
    """Stops a token from carrying privileges its holder no longer has: an admin demoted
    to user still holds a token claiming `admin`, yet the admin-only user list answers
    403 on the very next request, and the next refreshed token claims `user`."""
    admin = await auth.user_service(lambda s: s.create("boss@example.com", "Boss", "admin"))
    await auth.user_service(lambda s: s.create("keeper@example.com", "Keeper", "admin"))
    await auth.container.service().set_password("boss@example.com", PASSWORD)
    response = await auth.login("boss@example.com")
    assert response.status_code == 200, response.text
    signed_in = response.json()
    assert (await auth.client.get(USERS, headers=bearer(signed_in))).status_code == 200

    await auth.user_service(lambda s: s.update(admin.id, {"role": "user"}))

    assert claims_of(signed_in["access_token"])["roles"] == ["admin"]
    forbidden = await auth.client.get(USERS, headers=bearer(signed_in))
    assert_problem(forbidden, 403, "core.forbidden")
    mine = await auth.me(signed_in)
    assert mine.status_code == 200
    assert mine.json()["role"] == "user"
    refreshed = await auth.refresh(signed_in["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["roles"] == ["user"]
