"""Forwarded headers (`X-Forwarded-For`, `X-Forwarded-Proto`) count only from the peers
listed in `COURTYARD_FORWARDED_ALLOW_IPS` (default: none), under `courtyard serve` and
under plain uvicorn alike.

Over real HTTP, the rate limit on failed sign-ins per client IP shows which address the
app took for the client: every request comes from 127.0.0.1, each with a different
`X-Forwarded-For` and a different email, and the per-IP limit is 3 a minute.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from core.app import create_app
from core.settings import ConfigurationError, CoreSettings
from tests.support.courtyard_cli import PROJECT_ROOT, assert_one_line_error, run_courtyard
from tests.support.problems import assert_problem
from tests.support.served import UVICORN, server_output, serving, wait_until_live

LOGIN = "/api/v1/auth/login"
PASSWORD = "correct horse battery staple"
UNTRUSTED_FORWARDED_CODE = "core.untrusted_forwarded_header"
LIMIT_PER_IP = 3  # sign-in attempts per minute per client IP, for every server here
_emails = itertools.count()


# -- the setting ----------------------------------------------------------------------------


def load(allow_ips: str | None = None) -> CoreSettings:
    """CoreSettings from the environment, with COURTYARD_FORWARDED_ALLOW_IPS=`allow_ips`."""
    with pytest.MonkeyPatch.context() as patch:
        if allow_ips is not None:
            patch.setenv("COURTYARD_FORWARDED_ALLOW_IPS", allow_ips)
        return CoreSettings.load()


def load_error(allow_ips: str | None = None) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        load(allow_ips)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "COURTYARD_FORWARDED_ALLOW_IPS" in message
    return message


def test_by_default_no_peer_is_trusted() -> None:
    assert load().forwarded_allow_ips == []
    assert load("").forwarded_allow_ips == []
    assert load(" , ").forwarded_allow_ips == []


def test_addresses_and_networks_are_read_comma_separated() -> None:
    settings = load(" 10.0.0.1, 172.16.0.0/12,::1 ,FD00::/8")
    assert settings.forwarded_allow_ips == ["10.0.0.1", "172.16.0.0/12", "::1", "fd00::/8"]


def test_a_star_alone_trusts_every_peer() -> None:
    assert load("*").forwarded_allow_ips == ["*"]
    message = load_error("*,10.0.0.1")
    assert "'*'" in message


def test_the_config_file_may_give_a_list() -> None:
    Path("courtyard.toml").write_text('forwarded_allow_ips = ["10.0.0.1", "10.1.0.0/16"]\n')
    assert load().forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16"]
    Path("courtyard.toml").write_text('forwarded_allow_ips = ["10.0.0.1", "proxy.local"]\n')
    assert "'proxy.local'" in load_error()


@pytest.mark.parametrize(
    "entry", ["10.0.0.300", "proxy.local", "10.0.0.1/8", "10.0.0.0/33", "::g", "127.0.0.1:80"]
)
def test_a_bad_entry_is_one_line_naming_the_setting_and_the_entry(entry: str) -> None:
    message = load_error(f"127.0.0.1,{entry}")
    assert repr(entry) in message, message


def test_a_bad_entry_stops_the_cli_in_one_line(tmp_path: Path) -> None:
    result = run_courtyard(
        "serve",
        cwd=tmp_path,
        env={
            "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bad.db'}",
            "COURTYARD_FORWARDED_ALLOW_IPS": "10.0.0.0/8,10.0.0.300",
        },
    )
    assert_one_line_error(result, "COURTYARD_FORWARDED_ALLOW_IPS", "'10.0.0.300'")


# -- in process -----------------------------------------------------------------------------


async def echo_client(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address and scheme it was given."""
    body = f"{scope['client'][0]} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def seen_by_app(
    allow_ips: list[str], peer: str, headers: dict[str, str] | None = None
) -> str:
    from core.forwarded import apply_forwarded_headers

    app = apply_forwarded_headers(echo_client, allow_ips=allow_ips)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.get("/", headers=headers)).text


FORWARDED = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}


async def test_forwarded_headers_count_only_from_a_listed_peer() -> None:
    assert await seen_by_app(["10.0.0.0/8"], "10.1.2.3", FORWARDED) == "198.51.100.7 https"
    assert await seen_by_app(["10.0.0.0/8"], "192.0.2.1", FORWARDED) == "192.0.2.1 http"
    assert await seen_by_app(["::1"], "::1", FORWARDED) == "198.51.100.7 https"
    assert await seen_by_app(["*"], "192.0.2.1", FORWARDED) == "198.51.100.7 https"
    assert await seen_by_app([], "10.1.2.3", FORWARDED) == "10.1.2.3 http"
    chain = {"X-Forwarded-For": "198.51.100.7, 10.9.9.9"}  # a listed proxy behind another
    assert await seen_by_app(["10.0.0.0/8"], "10.1.2.3", chain) == "198.51.100.7 http"


def app_with_whoami(tmp_path: Path, **overrides: Any) -> FastAPI:
    settings = CoreSettings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'whoami.db'}",
        enabled_plugins=[],
        **overrides,
    )
    app = create_app(settings)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"client": request.client.host if request.client else None}

    return app


@asynccontextmanager
async def client_of(app: FastAPI, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_app_applies_the_listed_peers_outside_every_other_middleware(
    tmp_path: Path,
) -> None:
    from core.forwarded import apply_forwarded_headers

    app = app_with_whoami(tmp_path, forwarded_allow_ips="127.0.0.1")
    assert app.user_middleware[0].cls is apply_forwarded_headers  # outermost
    async with client_of(app, "127.0.0.1") as client:
        response = await client.get("/whoami", headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.json() == {"client": "198.51.100.7"}


async def test_a_client_address_taken_from_an_untrusted_header_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer 198.51.100.7 names itself in X-Forwarded-For: only a server's proxy-header
    step (plain uvicorn trusting 127.0.0.1) makes the client one of the forwarded entries."""
    import core.forwarded

    monkeypatch.setattr(core.forwarded, "_warned", False)  # as in a fresh process
    app = app_with_whoami(tmp_path)
    caplog.set_level(logging.WARNING, logger="courtyard.request")
    async with client_of(app, "198.51.100.7") as client:
        for forwarded in ("198.51.100.7", "203.0.113.1, 198.51.100.7:4711"):
            refused = await client.get("/whoami", headers={"X-Forwarded-For": forwarded})
            body = assert_problem(refused, 400, UNTRUSTED_FORWARDED_CODE)
            for fragment in ("COURTYARD_FORWARDED_ALLOW_IPS", "--no-proxy-headers", "serve"):
                assert fragment in body["detail"], body
        elsewhere = await client.get("/whoami", headers={"X-Forwarded-For": "203.0.113.1"})
        assert elsewhere.json() == {"client": "198.51.100.7"}  # the peer: header ignored
    warnings = [r for r in caplog.records if r.name == "courtyard.request"]
    assert len(warnings) == 1  # once per process
    assert warnings[0].levelno == logging.WARNING
    assert "COURTYARD_FORWARDED_ALLOW_IPS" in warnings[0].getMessage()
    assert "--no-proxy-headers" in warnings[0].getMessage()


async def test_an_unreadable_forwarded_entry_the_server_took_is_refused_too(
    tmp_path: Path,
) -> None:
    """Stops a bypass of the refusal above: uvicorn's own proxy-header step (trusting
    127.0.0.1, as plain uvicorn does by default) keeps an entry it cannot read as the client
    verbatim, and a fresh made-up string per request would be a fresh per-IP bucket."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = ProxyHeadersMiddleware(app_with_whoami(tmp_path), trusted_hosts="127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for forwarded in ("6.6.6.6:abc", "[foo", "[::1]x", "1.2.3.4, [::1", "6.6.6.6", "::1"):
            refused = await client.get("/whoami", headers={"X-Forwarded-For": forwarded})
            assert refused.status_code == 400, (forwarded, refused.text)
            assert_problem(refused, 400, UNTRUSTED_FORWARDED_CODE)
        plain = await client.get("/whoami")
    assert plain.json() == {"client": "127.0.0.1"}


# -- over real HTTP -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database with the user and auth tables, migrated once for the module."""
    folder = tmp_path_factory.mktemp("forwarded-db")
    path = folder / "migrated.db"
    environment = {**server_environment(path), "PYTHONPATH": str(PROJECT_ROOT)}
    result = run_courtyard("db", "upgrade", cwd=folder, env=environment)
    assert result.returncode == 0, result.stderr
    return path


def server_environment(database: Path, **extra: str) -> dict[str, str]:
    return {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "COURTYARD_ENABLED_PLUGINS": "user,auth,mail",
        "COURTYARD_ENV": "test",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_IP": f"{LIMIT_PER_IP}/minute",
        "COURTYARD_AUTH__LOGIN_LIMIT_PER_ACCOUNT": "1000/minute",
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }


def own_database(migrated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "server.db"
    shutil.copyfile(migrated, copy)
    return copy


def plain_uvicorn(
    environment: dict[str, str], cwd: Path, log: Path, *flags: str
) -> AbstractContextManager[tuple[str, subprocess.Popen[str]]]:
    """`uvicorn --factory core.app:create_app [flags]` on a free local port, as the README
    documents it, configured by `environment` alone."""
    return serving(environment, cwd, log, command=[*UVICORN, *flags])


async def failed_logins(base_url: str, log: Path, forwarded_for: list[str]) -> list[int]:
    """One failed sign-in per entry, each with that X-Forwarded-For and its own email."""
    statuses = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        for forwarded in forwarded_for:
            email = f"nobody{next(_emails)}@example.com"
            response = await client.post(
                LOGIN,
                json={"email": email, "password": PASSWORD},
                headers={"X-Forwarded-For": forwarded},
            )
            assert response.status_code in {401, 429}, f"{response.text}\n{server_output(log)}"
            statuses.append(response.status_code)
    return statuses


THROTTLED_ON_THE_4TH = [401] * LIMIT_PER_IP + [429]
DISTINCT = [f"203.0.113.{n}" for n in range(1, LIMIT_PER_IP + 2)]


async def test_courtyard_serve_ignores_forwarded_headers_by_default(
    migrated_database: Path, tmp_path: Path
) -> None:
    """Stops: any client on the host picking its own per-IP bucket with X-Forwarded-For
    (`courtyard serve` turned uvicorn's proxy headers on, which trusts 127.0.0.1)."""
    log = tmp_path / "serve.log"
    environment = server_environment(own_database(migrated_database, tmp_path))
    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        assert await failed_logins(base_url, log, DISTINCT) == THROTTLED_ON_THE_4TH


async def test_courtyard_serve_uses_forwarded_for_from_a_listed_proxy(
    migrated_database: Path, tmp_path: Path
) -> None:
    """127.0.0.1 (the test, as the proxy) is listed, and so is 10.0.0.0/8 (a proxy in front
    of it): the client is the rightmost address not listed."""
    log = tmp_path / "serve.log"
    environment = server_environment(
        own_database(migrated_database, tmp_path),
        COURTYARD_FORWARDED_ALLOW_IPS="127.0.0.1,10.0.0.0/8",
    )
    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        distinct = [f"198.51.100.{n}" for n in range(1, LIMIT_PER_IP + 2)]
        assert await failed_logins(base_url, log, distinct) == [401] * (LIMIT_PER_IP + 1)
        repeated = ["198.51.100.50"] * (LIMIT_PER_IP + 1)
        assert await failed_logins(base_url, log, repeated) == THROTTLED_ON_THE_4TH
        chained = [f"192.0.2.{n}, 10.0.0.2" for n in range(1, LIMIT_PER_IP + 2)]
        assert await failed_logins(base_url, log, chained) == [401] * (LIMIT_PER_IP + 1)


async def test_plain_uvicorn_applying_untrusted_forwarded_headers_is_refused(
    migrated_database: Path, tmp_path: Path
) -> None:
    """Stops: `uvicorn --factory core.app:create_app` (proxy headers on, 127.0.0.1 trusted)
    handing the app a client address a local client chose."""
    log = tmp_path / "uvicorn.log"
    environment = server_environment(own_database(migrated_database, tmp_path))
    with plain_uvicorn(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            for forwarded in ("203.0.113.1", "203.0.113.2"):
                refused = await client.post(
                    LOGIN,
                    json={"email": "ann@example.com", "password": PASSWORD},
                    headers={"X-Forwarded-For": forwarded},
                )
                body = assert_problem(refused, 400, UNTRUSTED_FORWARDED_CODE)
                assert "--no-proxy-headers" in body["detail"], body
                assert "COURTYARD_FORWARDED_ALLOW_IPS" in body["detail"], body
            plain = await client.post(
                LOGIN, json={"email": "ann@example.com", "password": PASSWORD}
            )
            assert plain.status_code == 401, plain.text  # no forwarded header: served
    output = server_output(log)
    assert output.count("does not trust") == 1, output  # the warning, once per process


async def test_plain_uvicorn_without_proxy_headers_ignores_forwarded_headers(
    migrated_database: Path, tmp_path: Path
) -> None:
    """The documented plain-uvicorn command behaves as `courtyard serve`."""
    log = tmp_path / "uvicorn.log"
    environment = server_environment(own_database(migrated_database, tmp_path))
    with plain_uvicorn(environment, tmp_path, log, "--no-proxy-headers") as (base_url, process):
        await wait_until_live(base_url, process, log)
        assert await failed_logins(base_url, log, DISTINCT) == THROTTLED_ON_THE_4TH


async def test_plain_uvicorn_without_proxy_headers_uses_the_listed_proxies(
    migrated_database: Path, tmp_path: Path
) -> None:
    """Under plain uvicorn too the app applies COURTYARD_FORWARDED_ALLOW_IPS itself."""
    log = tmp_path / "uvicorn.log"
    environment = server_environment(
        own_database(migrated_database, tmp_path), COURTYARD_FORWARDED_ALLOW_IPS="127.0.0.1"
    )
    with plain_uvicorn(environment, tmp_path, log, "--no-proxy-headers") as (base_url, process):
        await wait_until_live(base_url, process, log)
        assert await failed_logins(base_url, log, DISTINCT) == [401] * (LIMIT_PER_IP + 1)
