"""Signing up and signing in through the HTTP API: what a client sees, what is stored, and
the attacks each rule stops (account enumeration, weak or mangled passwords, mass
assignment, stale password hashes)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from plugins.auth.passwords import PasswordHasherService, normalized
from tests.plugins.auth.conftest import (
    AUTH,
    ME,
    NEW_PASSWORD,
    PASSWORD,
    AuthApp,
    AuthAppFactory,
    bearer,
    hasher_of,
)
from tests.support.problems import assert_problem

SIGNED_IN_KEYS = {"user", "access_token", "refresh_token", "token_type", "expires_in"}
URL_SAFE_256_BITS = re.compile(r"[A-Za-z0-9_-]{43,}")
DEFAULT_HASH_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
STRONGER_HASH_PREFIX = "$argon2id$v=19$m=19456,t=3,p=1$"


# Helpers


class CountingHasher(PasswordHasherService):
    """The real argon2id hasher, counting the hashes it makes and the verifications it runs
    (every verification, the dummy one included, goes through `_verify`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hashed: list[str] = []
        self.verified: list[str] = []  # the stored hash each verification ran against

    async def hash(self, password: str) -> str:
        self.hashed.append(password)
        return await super().hash(password)

    def _verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return super()._verify(password_hash, password)

    def reset(self) -> None:
        self.hashed.clear()
        self.verified.clear()


class ParkedRehash(PasswordHasherService):
    """The real hasher, except that the first hash it makes waits for `release` (after
    setting `parked`): a login's rehash held between its two transactions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parked = asyncio.Event()
        self.release = asyncio.Event()
        self._first = True

    async def hash(self, password: str) -> str:
        password_hash = await super().hash(password)
        if self._first:
            self._first = False
            self.parked.set()
            await self.release.wait()
        return password_hash


def without_request_identity(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body minus what differs between any two requests."""
    return {k: v for k, v in body.items() if k not in {"instance", "request_id"}}


def field_errors(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(error["field"], error["type"]) for error in body["errors"]]


async def count(auth: AuthApp, table: str) -> int:
    [(n,)] = await auth.rows(f'SELECT count(*) FROM "{table}"')
    return int(n)


async def stored_hash(auth: AuthApp, user_id: str) -> str:
    [(password_hash,)] = await auth.rows(
        "SELECT password_hash FROM auth_credential WHERE user_id = :id", id=user_id
    )
    return str(password_hash)


async def signup_response(
    auth: AuthApp, email: str, password: str = PASSWORD, name: str = "Test User"
) -> httpx.Response:
    return await auth.client.post(
        f"{AUTH}/signup", json={"email": email, "password": password, "name": name}
    )


def assert_signed_in(body: dict[str, Any]) -> None:
    """The shape of every successful sign-up and sign-in."""
    assert body.keys() == SIGNED_IN_KEYS, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert URL_SAFE_256_BITS.fullmatch(body["refresh_token"]), body["refresh_token"]


# Signing up


async def test_signup_answers_the_new_user_and_a_working_token_pair(auth: AuthApp) -> None:
    """The contract clients build on; also stops a refresh token guessable by brute force
    (under 256 bits) and a password (or its hash) echoed back in the response."""
    response = await signup_response(auth, "Ann.Lee@Example.com", name="Ann Lee")

    assert response.status_code == 201, response.text
    body = response.json()
    assert_signed_in(body)
    user = body["user"]
    assert user["email"] == "Ann.Lee@Example.com"  # as given, not lower-cased
    assert user["name"] == "Ann Lee"
    assert user["role"] == "user"
    assert user["is_active"] is True
    assert PASSWORD not in response.text
    assert "argon2" not in response.text
    me = await auth.me(body)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == "Ann.Lee@Example.com"


@pytest.mark.real_argon2
async def test_signup_stores_only_an_argon2id_hash_at_owasp_parameters(auth: AuthApp) -> None:
    """A database dump must not reveal passwords, nor hashes cheaper than OWASP's minimum."""
    user = (await auth.signup("ann@example.com"))["user"]

    password_hash = await stored_hash(auth, user["id"])

    assert password_hash.startswith(DEFAULT_HASH_PREFIX), password_hash
    assert PASSWORD not in password_hash


@pytest.mark.parametrize(
    "second_email",
    [pytest.param("ann@example.com", id="same"), pytest.param("ANN@Example.COM", id="other-case")],
)
async def test_a_taken_email_is_refused_and_the_account_left_intact(
    auth: AuthApp, second_email: str
) -> None:
    """Stops an account takeover by signing up again (even in another case): the first
    owner keeps their password, and no second user or credential appears."""
    first = (await auth.signup("ann@example.com", name="Ann"))["user"]
    original_hash = await stored_hash(auth, first["id"])

    response = await signup_response(auth, second_email, NEW_PASSWORD, "Mallory")

    assert_problem(response, 409, "user.email_taken")
    assert await count(auth, "user") == 1
    assert await count(auth, "auth_credential") == 1
    assert await stored_hash(auth, first["id"]) == original_hash
    assert await auth.rows('SELECT name FROM "user" WHERE id = :id', id=first["id"]) == [("Ann",)]
    assert_problem(
        await auth.login("ann@example.com", NEW_PASSWORD), 401, "auth.invalid_credentials"
    )
    owner = await auth.login("ann@example.com", PASSWORD)
    assert owner.status_code == 200, owner.text
    assert owner.json()["user"]["id"] == first["id"]


@pytest.mark.parametrize(
    ("password", "kind"),
    [
        pytest.param("x7#Kq9!", "string_too_short", id="7-characters"),
        pytest.param("x7#Kq9!" + "z" * 1018, "string_too_long", id="1025-characters"),
        pytest.param("password1", "password_too_common", id="password1"),
        pytest.param("iloveyou1", "password_too_common", id="iloveyou1"),
        pytest.param("ILoveYou1", "password_too_common", id="common-any-case"),
    ],
)
async def test_the_password_policy_refuses(auth: AuthApp, password: str, kind: str) -> None:
    """Stops guessable passwords (too short, on attackers' lists) and over-long ones (argon2
    work per request an attacker controls); nothing is stored for a refused sign-up."""
    response = await signup_response(auth, "ann@example.com", password)

    body = assert_problem(response, 422, "core.validation_error")
    assert field_errors(body) == [("password", kind)]
    assert await count(auth, "user") == 0
    assert await count(auth, "auth_credential") == 0


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("x7#Kq9!z", id="8-characters"),
        pytest.param("x7#Kq9!" + "z" * 1017, id="1024-characters"),
    ],
)
async def test_the_password_policy_accepts_its_limits(auth: AuthApp, password: str) -> None:
    """Stops an off-by-one that would refuse a password the documented policy allows."""
    assert len(password) in {8, 1024}
    await auth.signup("ann@example.com", password)

    response = await auth.login("ann@example.com", password)

    assert response.status_code == 200, response.text


async def test_any_unicode_password_is_accepted_and_signs_in(auth: AuthApp) -> None:
    """Stops an ASCII-only policy or encoding bug locking out users of other scripts."""
    password = "🦊 renard rusé, ключ 鍵 🌙"
    await auth.signup("ann@example.com", password)

    response = await auth.login("ann@example.com", password)

    assert response.status_code == 200, response.text


async def test_a_password_signs_in_from_any_keyboard(auth: AuthApp) -> None:
    """NFKC (NIST SP 800-63B): a password typed in full-width forms (an East Asian IME) must
    match the same password typed on another keyboard, or its owner is locked out."""
    ascii_form = "Correct horse battery staple 9"
    full_width = "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in ascii_form)
    assert full_width != ascii_form
    assert normalized(full_width) == ascii_form
    await auth.signup("ann@example.com", full_width)

    typed_elsewhere = await auth.login("ann@example.com", ascii_form)
    typed_the_same = await auth.login("ann@example.com", full_width)

    assert typed_elsewhere.status_code == 200, typed_elsewhere.text
    assert typed_the_same.status_code == 200, typed_the_same.text


@pytest.mark.parametrize("email", ["ann@example.com", "nobody@example.com"])
async def test_an_over_long_password_is_refused_at_login_before_any_hashing(
    auth: AuthApp, email: str
) -> None:
    """Stops a CPU-exhaustion attack (megabyte passwords fed to argon2) and shows the
    refusal needs no account: known and unknown emails get the same 422, unhashed."""
    await auth.signup("ann@example.com")
    with hasher_of(auth, CountingHasher) as hasher:
        response = await auth.login(email, "y" * 1025)

        body = assert_problem(response, 422, "core.validation_error")
        assert field_errors(body) == [("password", "string_too_long")]
        assert hasher.verified == []
        assert hasher.hashed == []


@pytest.mark.parametrize(
    ("payload", "field", "kind"),
    [
        pytest.param(
            {"email": "not-an-email", "password": PASSWORD, "name": "Ann"},
            "email",
            None,
            id="invalid-email",
        ),
        pytest.param(
            {"email": "ann@example.com", "name": "Ann"},
            "password",
            "missing",
            id="missing-password",
        ),
        pytest.param(
            {"email": "ann@example.com", "password": PASSWORD}, "name", "missing", id="missing-name"
        ),
        pytest.param(
            {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "admin"},
            "role",
            "extra_forbidden",
            id="extra-field-role",
        ),
        pytest.param(
            {"email": "ann@example.com", "password": PASSWORD, "name": "   "},
            "name",
            None,
            id="blank-name",
        ),
        pytest.param(
            {"email": "ann@example.com", "password": PASSWORD, "name": ""},
            "name",
            "string_too_short",
            id="empty-name",
        ),
    ],
)
async def test_bad_signup_input_is_refused_naming_the_field(
    auth: AuthApp, payload: dict[str, Any], field: str, kind: str | None
) -> None:
    """Stops malformed accounts and mass assignment (`"role": "admin"` must not make an
    admin, nor be silently ignored); the 422 names the field so a client can show it."""
    response = await auth.client.post(f"{AUTH}/signup", json=payload)

    body = assert_problem(response, 422, "core.validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    if kind is not None:
        assert body["errors"][0]["type"] == kind, body
    assert await count(auth, "user") == 0


async def test_signup_fires_user_created_once_the_account_is_committed(
    auth_app: AuthAppFactory, use_dists: Callable[..., None]
) -> None:
    """Stops listeners (welcome emails, provisioning) acting on an account that is not in
    the database yet, or on a refused duplicate."""
    use_dists("userwatch")
    async with auth_app(core={"enabled_plugins": "user,auth,mail,userwatch"}) as auth:
        user = (await auth.signup("ann@example.com"))["user"]
        duplicate = await signup_response(auth, "ANN@example.com")
        events = (await auth.client.get("/api/v1/userwatch/events")).json()

    assert_problem(duplicate, 409, "user.email_taken")
    assert events == [
        {"event": "user_created", "user_id": user["id"], "email": "ann@example.com",
         "visible": True},
    ]  # fmt: skip


# Signing in


async def test_login_answers_tokens_whatever_the_email_case(auth: AuthApp) -> None:
    """The same contract as sign-up; an address typed with other capitals is the same
    account (otherwise users are locked out, or a look-alike account could exist)."""
    signed_up = await auth.signup("Ann@Example.com")

    response = await auth.login("aNN@eXAMPLE.COM")

    assert response.status_code == 200, response.text
    body = response.json()
    assert_signed_in(body)
    assert body["user"] == signed_up["user"]
    assert body["refresh_token"] != signed_up["refresh_token"]  # a new session
    me = await auth.me(body)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == signed_up["user"]["id"]


async def test_every_failed_login_looks_the_same(auth: AuthApp) -> None:
    """Stops account enumeration: an unknown email, a wrong password, a deactivated and a
    deleted account give one and the same 401 (body and challenge header)."""
    wrong = (await auth.signup("wrong@example.com"))["user"]
    inactive = (await auth.signup("inactive@example.com"))["user"]
    deleted = (await auth.signup("deleted@example.com"))["user"]
    await auth.user_service(lambda s: s.set_active(inactive["id"], False))
    await auth.user_service(lambda s: s.delete(deleted["id"]))

    attempts = {
        "unknown email": await auth.login("nobody@example.com"),
        "wrong password": await auth.login(wrong["email"], NEW_PASSWORD),
        "inactive account": await auth.login(inactive["email"]),  # the right password
        "deleted account": await auth.login(deleted["email"]),  # the right password
    }

    bodies = {
        reason: without_request_identity(assert_problem(r, 401, "auth.invalid_credentials"))
        for reason, r in attempts.items()
    }
    challenges = {reason: r.headers.get("www-authenticate") for reason, r in attempts.items()}
    assert len({repr(sorted(b.items())) for b in bodies.values()}) == 1, bodies
    assert set(challenges.values()) == {"Bearer"}, challenges


@pytest.mark.real_argon2
async def test_an_unknown_email_costs_the_same_argon2_verification(auth: AuthApp) -> None:
    """Stops timing-based enumeration: without the dummy verification an unknown email would
    answer ~50 ms faster than a wrong password. Both run exactly one argon2id verification
    at the configured cost."""
    await auth.signup("ann@example.com")
    with hasher_of(auth, CountingHasher) as hasher:
        wrong_password = await auth.login("ann@example.com", NEW_PASSWORD)
        known = list(hasher.verified)
        hasher.reset()
        unknown_email = await auth.login("nobody@example.com", NEW_PASSWORD)
        unknown = list(hasher.verified)

    assert_problem(wrong_password, 401, "auth.invalid_credentials")
    assert_problem(unknown_email, 401, "auth.invalid_credentials")
    assert len(known) == 1
    assert len(unknown) == 1
    assert all(h.startswith(DEFAULT_HASH_PREFIX) for h in known + unknown), known + unknown


async def test_the_oauth2_token_form_signs_in_like_login(auth: AuthApp) -> None:
    """Swagger's Authorize button and OAuth2 clients use `/token`: it must issue the same
    tokens (never cached, RFC 6749 §5.1), and refuse a wrong password for the same reasons
    as /login (no second, weaker door), in the shape OAuth2 clients read (§5.2): 400
    `invalid_grant`, with the same problem details as /login's 401 besides."""
    await auth.signup("ann@example.com")
    token_url = f"{AUTH}/token"

    ok = await auth.client.post(
        token_url,
        data={"grant_type": "password", "username": "ANN@example.com", "password": PASSWORD},
    )
    bad = await auth.client.post(
        token_url, data={"username": "ann@example.com", "password": NEW_PASSWORD}
    )
    unknown = await auth.client.post(
        token_url, data={"username": "nobody@example.com", "password": PASSWORD}
    )
    via_login = await auth.login("ann@example.com", NEW_PASSWORD)

    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
    assert_signed_in(ok.json())
    assert (await auth.client.get(ME, headers=bearer(ok.json()))).status_code == 200
    login_body = assert_problem(via_login, 401, "auth.invalid_credentials")
    for refused in (bad, unknown):
        body = assert_problem(refused, 400, "auth.invalid_credentials")
        assert body["error"] == "invalid_grant"
        assert body["error_description"] == body["detail"] == login_body["detail"]
        assert "access_token" not in body


@pytest.mark.parametrize(
    ("form", "error", "fields"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type", None),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type", None),
        ({"username": "ann@example.com"}, "invalid_request", ["password"]),
        ({"password": PASSWORD}, "invalid_request", ["username"]),
        ({"username": "", "password": ""}, "invalid_request", ["username", "password"]),
        ({}, "invalid_request", ["username", "password"]),
    ],
    ids=["client-credentials", "authorization-code", "no-password", "no-username", "empty", "none"],
)
async def test_a_token_request_that_is_no_password_grant_is_an_oauth_400(
    auth: AuthApp, form: dict[str, str], error: str, fields: list[str] | None
) -> None:
    """Stops OAuth2 clients getting a 422 they cannot read: a grant this endpoint does not
    issue is `unsupported_grant_type`, a missing field `invalid_request` naming it (RFC
    6749 §5.2), with the problem details besides; a password never reaches the service."""
    full = {"grant_type": "password", "username": "ann@example.com", "password": PASSWORD}
    sent = {**full, **form} if error == "unsupported_grant_type" else form

    response = await auth.client.post(f"{AUTH}/token", data=sent)

    body = assert_problem(response, 400, f"auth.{error}")
    assert body["error"] == error
    assert body["error_description"] == body["detail"]
    if fields is not None:
        assert [e["field"] for e in body["errors"]] == fields
        for field in fields:
            assert field in body["detail"]


async def test_a_json_body_at_the_token_endpoint_is_an_invalid_request(auth: AuthApp) -> None:
    """The token endpoint takes a form (RFC 6749 §4.3.2); JSON there is a missing form,
    answered as `invalid_request`, not a 422 or a sign-in."""
    await auth.signup("ann@example.com")
    sent = {"grant_type": "password", "username": "ann@example.com", "password": PASSWORD}

    response = await auth.client.post(f"{AUTH}/token", json=sent)

    body = assert_problem(response, 400, "auth.invalid_request")
    assert body["error"] == "invalid_request"


async def test_the_openapi_document_offers_the_password_flow(auth: AuthApp) -> None:
    """Stops a broken Authorize button: the OAuth2 password scheme points at the real token
    URL and is offered next to the bearer scheme on protected operations."""
    response = await auth.client.get("/openapi.json")

    assert response.status_code == 200, response.text
    document = response.json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["OAuth2Password"]["type"] == "oauth2"
    assert schemes["OAuth2Password"]["flows"]["password"]["tokenUrl"] == f"{AUTH}/token"
    security = document["paths"][ME]["get"]["security"]
    assert {"HTTPBearer": []} in security
    assert {"OAuth2Password": []} in security


# Rehashing


@pytest.mark.real_argon2
async def test_login_upgrades_a_hash_made_with_weaker_parameters(
    auth_app: AuthAppFactory,
) -> None:
    """Stops old, cheaper hashes living forever after an operator raises the argon2 cost:
    the next successful login stores a hash at the new cost; a failed one changes nothing
    (otherwise anyone could overwrite the hash)."""
    async with auth_app() as before:
        user = (await before.signup("ann@example.com"))["user"]
        old_hash = await stored_hash(before, user["id"])
    assert old_hash.startswith(DEFAULT_HASH_PREFIX), old_hash

    async with auth_app(argon2_time_cost=3) as after:  # the same database
        failed = await after.login("ann@example.com", NEW_PASSWORD)
        after_failure = await stored_hash(after, user["id"])
        signed_in = await after.login("ann@example.com")
        upgraded = await stored_hash(after, user["id"])
        again = await after.login("ann@example.com")
        after_second_login = await stored_hash(after, user["id"])

    assert_problem(failed, 401, "auth.invalid_credentials")
    assert after_failure == old_hash
    assert signed_in.status_code == 200, signed_in.text
    assert upgraded.startswith(STRONGER_HASH_PREFIX), upgraded
    assert again.status_code == 200, again.text
    assert after_second_login == upgraded  # no rehash once the parameters match


@pytest.mark.real_argon2
async def test_a_rehash_never_undoes_a_password_change_made_meanwhile(
    auth_app: AuthAppFactory,
) -> None:
    """Stops a lost update that revives a password its owner replaced (e.g. after learning it
    leaked): a login holding the old password rehashes it between its two transactions; a
    password change committed in that gap must survive, and the old password must stay dead."""
    async with auth_app() as before:
        signed_up = await before.signup("ann@example.com")

    async with auth_app(argon2_time_cost=3) as auth:
        with hasher_of(auth, ParkedRehash) as hasher:
            attacker = asyncio.create_task(auth.login("ann@example.com", PASSWORD))
            await asyncio.wait_for(hasher.parked.wait(), 30)  # a safety net, not a timing
            changed = await auth.client.post(
                f"{AUTH}/password",
                json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                headers=bearer(signed_up),
            )
            hasher.release.set()
            await attacker
        stored = await stored_hash(auth, signed_up["user"]["id"])
        owner = await auth.login("ann@example.com", NEW_PASSWORD)
        old_password = await auth.login("ann@example.com", PASSWORD)

    assert changed.status_code == 204, changed.text
    assert owner.status_code == 200, f"the new password stopped working (hash now {stored})"
    assert_problem(old_password, 401, "auth.invalid_credentials")
