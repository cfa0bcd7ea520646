"""Secrets stay secret: not in logs, not in error responses, not in configuration errors.

A password, an access or refresh token, or the stored password hash must never reach a log
record (whatever the level), a problem response (which a proxy or the client may log), or
the one-line error that stops a misconfigured production start.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import make_settings, running
from tests.plugins.auth.conftest import (
    AUTH,
    NEW_PASSWORD,
    PASSWORD,
    PLUGINS,
    AuthApp,
    AuthAppFactory,
    bearer,
)
from tests.support.problems import assert_problem

WRONG_PASSWORD = "not the right passphrase at all"
# 64 bytes, 32 distinct characters: strong enough for production, not the development default
STRONG_SECRET = "secret-of-64-bytes-for-these-tests-0123456789-abcdefghijklmnopqr"
# Distinctive, so that finding any long piece of it in a response means it was echoed.
HUGE_PASSWORD = "".join(f"Hx{i:04d}!" for i in range(715))[:5000]
TOO_SHORT = "x7#Kq9!"  # 7 characters
TOO_COMMON = "iloveyou"  # in the common-password list, 8 characters


# -- logs ----------------------------------------------------------------------------------


def _record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for `record`: the message, its raw args, and any
    exception with its traceback."""
    parts = [str(record.msg), record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.extend(traceback.format_exception(record.exc_info[1]))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


async def _every_flow(auth: AuthApp, email: str) -> dict[str, str]:
    """Sign up, fail a login, log in, refresh, replay a spent refresh token, log out, use
    the OAuth2 form, change the password and log in with it; every secret that went by."""
    signed_up = await auth.signup(email)
    [(first_hash,)] = await auth.rows("SELECT password_hash FROM auth_credential")
    wrong = await auth.login(email, WRONG_PASSWORD)
    assert_problem(wrong, 401, "auth.invalid_credentials")
    login = await auth.login(email)
    assert login.status_code == 200, login.text
    logged_in = login.json()
    refreshed = await auth.refresh(logged_in["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    replayed = await auth.refresh(logged_in["refresh_token"])  # theft: the session ends
    assert_problem(replayed, 401, "auth.invalid_refresh_token")
    assert (await auth.me(refreshed.json())).status_code == 401  # the session was revoked
    logout = await auth.logout(signed_up["refresh_token"])
    assert logout.status_code == 204, logout.text
    form = await auth.client.post(f"{AUTH}/token", data={"username": email, "password": PASSWORD})
    assert form.status_code == 200, form.text
    changed = await auth.client.post(
        f"{AUTH}/password",
        headers=bearer(form.json()),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    relogin = await auth.login(email, NEW_PASSWORD)
    assert relogin.status_code == 200, relogin.text
    [(second_hash,)] = await auth.rows("SELECT password_hash FROM auth_credential")
    assert first_hash != second_hash

    secrets = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "stored hash": first_hash,
        "new stored hash": second_hash,
        "replayed session id": _session_id(logged_in),
    }
    bodies = [signed_up, logged_in, refreshed.json(), form.json(), relogin.json()]
    for i, body in enumerate(bodies):
        secrets[f"access token {i}"] = body["access_token"]
        secrets[f"refresh token {i}"] = body["refresh_token"]
    return secrets


def _session_id(tokens: dict[str, Any]) -> str:
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return str(claims["sid"])


# Loggers of the database drivers: at DEBUG they trace each statement with its parameters.
DRIVER_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")


def _is_driver(record: logging.LogRecord) -> bool:
    return any(record.name == n or record.name.startswith(f"{n}.") for n in DRIVER_LOGGERS)


async def _logged_flow(
    auth_app: AuthAppFactory, caplog: pytest.LogCaptureFixture
) -> tuple[dict[str, str], str]:
    """Every flow run with every logger at DEBUG, as `COURTYARD_LOG_LEVEL=DEBUG courtyard
    serve` sets the root logger; the secrets that went by, and the replayed session's id."""
    caplog.set_level(logging.DEBUG)  # the root logger: every logger that does not opt out
    caplog.set_level(logging.DEBUG, logger="courtyard")
    # No grace: the replay is taken for theft at once, without waiting for the clock.
    async with auth_app(refresh_reuse_grace=0) as auth:
        secrets = await _every_flow(auth, "ann@example.com")
    return secrets, secrets.pop("replayed session id")


def _leaks(records: list[logging.LogRecord], secrets: dict[str, str]) -> list[tuple[str, str, str]]:
    return [
        (record.name, record.levelname, what)
        for record in records
        for what, secret in secrets.items()
        if secret in _record_text(record)
    ]


async def test_no_password_token_or_hash_reaches_the_app_logs(
    auth_app: AuthAppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops: a log line of Courtyard, the plugin or the web stack (a warning, a debug
    trace, an exception whose message holds a value) that carries a password, a token or
    the stored hash, which anyone who reads the logs could then use. The replay warning is
    required, so the capture is known to work and the test can fail."""
    secrets, session_id = await _logged_flow(auth_app, caplog)

    records = [r for r in caplog.records if not _is_driver(r)]
    assert _leaks(records, secrets) == []
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in warnings] == [("courtyard.auth", "WARNING")]
    assert "reuse" in warnings[0].getMessage()
    assert session_id in warnings[0].getMessage()


async def test_no_password_token_or_hash_reaches_the_database_driver_logs(
    auth_app: AuthAppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Stops: the stored password hash written to the log by the database driver's DEBUG
    trace of each statement and its parameters, which `COURTYARD_LOG_LEVEL=DEBUG` turns on
    for `courtyard serve` (its logging config puts the root logger, and so every library's
    logger, at that level). `db_echo` is the opt-in for SQL with parameters; a log level
    alone must not publish credentials."""
    secrets, _ = await _logged_flow(auth_app, caplog)

    records = [r for r in caplog.records if _is_driver(r)]
    assert _leaks(records, secrets) == []
    assert not [what for what, secret in secrets.items() if secret in caplog.text]


# -- problem responses ---------------------------------------------------------------------


def _errors(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["type"]) for e in body["errors"]]


@pytest.mark.parametrize(
    ("password", "kind"),
    [
        pytest.param(TOO_SHORT, "string_too_short", id="too-short"),
        pytest.param(TOO_COMMON, "password_too_common", id="too-common"),
        pytest.param("Hx" * 513, "string_too_long", id="over-the-configured-1024"),
    ],
)
async def test_a_refused_signup_password_is_not_echoed(
    auth: AuthApp, password: str, kind: str
) -> None:
    """Stops: a 422 that quotes the refused password back (in `detail`, in an `input`
    field), where logs of proxies and clients would keep it."""
    response = await auth.client.post(
        f"{AUTH}/signup", json={"email": "ann@example.com", "password": password, "name": "Ann"}
    )

    body = assert_problem(response, 422, "core.validation_error")
    assert _errors(body) == [("password", kind)]
    assert password not in response.text
    assert await auth.rows('SELECT id FROM "user"') == []


@pytest.mark.parametrize(
    ("password", "kind"),
    [
        pytest.param(TOO_SHORT, "string_too_short", id="too-short"),
        pytest.param(TOO_COMMON, "password_too_common", id="too-common"),
    ],
)
async def test_a_refused_new_password_is_not_echoed(
    auth: AuthApp, password: str, kind: str
) -> None:
    """Stops: the password-change 422 quoting the new (or the current) password."""
    signed_in = await auth.signup("ann@example.com")

    response = await auth.client.post(
        f"{AUTH}/password",
        headers=bearer(signed_in),
        json={"current_password": PASSWORD, "new_password": password},
    )

    body = assert_problem(response, 422, "core.validation_error")
    assert _errors(body) == [("new_password", kind)]
    assert password not in response.text
    assert PASSWORD not in response.text
    assert (await auth.login("ann@example.com")).status_code == 200  # unchanged


def _assert_not_echoed(response: httpx.Response, field: str, *, status: int = 422) -> None:
    body = assert_problem(response, status, "core.validation_error")
    if status == 400:  # the OAuth2 token endpoint (RFC 6749 §5.2)
        assert body["error"] == "invalid_request", body
    assert [f for f, _ in _errors(body)] == [field], body
    assert _errors(body)[0][1] == "string_too_long", body
    assert "input" not in body["errors"][0]
    # Not the whole password, and no recognisable piece of it either.
    assert HUGE_PASSWORD[:16] not in response.text
    assert HUGE_PASSWORD[-16:] not in response.text


async def test_an_over_long_password_is_refused_without_echoing_it(auth: AuthApp) -> None:
    """Stops: FastAPI's validation error `input` (or a service message) carrying a 5000
    character password back to the client, on every endpoint that takes a password."""
    signed_in = await auth.signup("ann@example.com")
    client = auth.client
    assert len(HUGE_PASSWORD) == 5000

    signup = await client.post(
        f"{AUTH}/signup", json={"email": "bob@example.com", "password": HUGE_PASSWORD, "name": "B"}
    )
    login = await client.post(
        f"{AUTH}/login", json={"email": "ann@example.com", "password": HUGE_PASSWORD}
    )
    form = await client.post(
        f"{AUTH}/token", data={"username": "ann@example.com", "password": HUGE_PASSWORD}
    )
    current = await client.post(
        f"{AUTH}/password",
        headers=bearer(signed_in),
        json={"current_password": HUGE_PASSWORD, "new_password": NEW_PASSWORD},
    )
    new = await client.post(
        f"{AUTH}/password",
        headers=bearer(signed_in),
        json={"current_password": PASSWORD, "new_password": HUGE_PASSWORD},
    )

    _assert_not_echoed(signup, "password")
    _assert_not_echoed(login, "password")
    _assert_not_echoed(form, "password", status=400)
    _assert_not_echoed(current, "current_password")
    _assert_not_echoed(new, "new_password")
    assert await auth.rows('SELECT email FROM "user"') == [("ann@example.com",)]


# -- production configuration --------------------------------------------------------------


def _pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def _key_material(key: str) -> list[str]:
    """The pieces of a key that must not be shown: every body line of a PEM, or the whole
    value when it is not one."""
    lines = [line.strip() for line in key.splitlines() if line.strip()]
    body = [line for line in lines if not line.startswith("-----")]
    return [line for line in body if len(line) >= 12] or [key]


def _everything_said(error: BaseException) -> str:
    """The message and the whole chained traceback, as a crash report would show them."""
    return str(error) + "\n" + "".join(traceback.format_exception(error))


async def test_production_refuses_the_development_secret_with_auth_enabled(
    database_url: str, tmp_path: Path
) -> None:
    """Stops: a production start whose tokens are signed with the public development
    secret (anyone could mint an admin's access token). Configured as an operator does,
    in `courtyard.toml` in the working directory."""
    (tmp_path / "courtyard.toml").write_text(
        f'env = "production"\ndatabase_url = "{database_url}"\nenabled_plugins = "{PLUGINS}"\n'
    )

    with pytest.raises(ConfigurationError) as refused:
        create_app()

    assert "COURTYARD_SECRET_KEY" in str(refused.value)
    assert "\n" not in str(refused.value)


def _malformed_keys() -> list[Any]:
    ed_pem = _pem(ed25519.Ed25519PrivateKey.generate())
    lines = ed_pem.splitlines()
    corrupted = "\n".join([lines[0], lines[1][:10] + "!!!!" + lines[1][14:], *lines[2:]])
    small_rsa = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - must be refused
    return [
        pytest.param("not-a-key-but-secret-material-Zq81xw", id="not-pem"),
        pytest.param("\n".join(lines[:-1]), id="truncated-pem"),
        pytest.param(corrupted, id="corrupted-pem"),
        pytest.param(small_rsa, id="rsa-1024"),
    ]


@pytest.mark.parametrize("key", _malformed_keys())
async def test_production_refuses_a_malformed_signing_key_without_showing_it(
    database_url: str, key: str
) -> None:
    """Stops: a bad COURTYARD_AUTH__JWT_PRIVATE_KEY that is only noticed at the first
    login (or silently replaced), and an error message that prints the private key."""
    settings = make_settings(
        database_url, env="production", secret_key=STRONG_SECRET, enabled_plugins=PLUGINS
    )

    with pytest.raises(ConfigurationError) as refused:
        create_app(settings, plugin_settings={"auth": {"jwt_private_key": key}})

    message = str(refused.value)
    assert "COURTYARD_AUTH__JWT_PRIVATE_KEY" in message
    assert "\n" not in message
    said = _everything_said(refused.value)
    assert not [piece for piece in _key_material(key) if piece in said]
    assert STRONG_SECRET not in said


async def test_production_starts_with_a_strong_secret_and_a_valid_signing_key(
    database_url: str,
) -> None:
    """The control for the two tests above: production is refused for the bad settings,
    not for being production."""
    settings = make_settings(
        database_url, env="production", secret_key=STRONG_SECRET, enabled_plugins=PLUGINS
    )
    key = _pem(ed25519.Ed25519PrivateKey.generate())

    app = create_app(settings, plugin_settings={"auth": {"jwt_private_key": key}})

    async with running(app) as client:
        response = await client.get(f"{AUTH}/jwks.json")
    assert response.status_code == 200, response.text
    [jwk] = response.json()["keys"]
    assert (jwk["kty"], jwk["alg"]) == ("OKP", "EdDSA")
    assert "d" not in jwk  # the public half only
