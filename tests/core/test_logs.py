"""The log lines an operator reads, from a served app (`courtyard serve` and plain
`uvicorn --factory core.app:create_app`) over real HTTP: one line per record, one access
line per request with its status and duration, `COURTYARD_LOG_FORMAT=text|json`, no query
string (it may hold a credential), and a `--log-config` of one's own left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.courtyard_cli import PROJECT_ROOT, assert_one_line_error, run_courtyard
from tests.support.served import SERVE, UVICORN, server_output, serving, wait_until_live

SIGNUP = "/api/v1/auth/signup"
ME = "/api/v1/users/me"
PASSWORD = "correct horse battery staple"
# A text line: its time, level, logger and request id, then the message and its fields.
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"[\w.]+ \[request_id=[^\]]+\] "
)
COMMANDS = pytest.mark.parametrize("command", [SERVE, UVICORN], ids=["serve", "uvicorn"])


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database with the user and auth tables, migrated once for the module."""
    folder = tmp_path_factory.mktemp("logs-db")
    path = folder / "migrated.db"
    result = run_courtyard("db", "upgrade", cwd=folder, env=server_environment(path))
    assert result.returncode == 0, result.stderr
    return path


def server_environment(database: Path, **extra: str) -> dict[str, str]:
    return {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "COURTYARD_ENABLED_PLUGINS": "user,auth,mail",
        "COURTYARD_ENV": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }


def own_database(migrated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "server.db"
    shutil.copyfile(migrated, copy)
    return copy


def json_records(log: Path) -> list[dict[str, Any]]:
    """Every line the server wrote, each parsed as one JSON object: any other line fails."""
    output = server_output(log)
    records = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{output}") from None
        assert isinstance(record, dict), line
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


def access_records(records: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["logger"] == "courtyard.access" and r.get("request_id") == request_id
    ]


def lines_with(log: Path, fragment: str) -> list[str]:
    return [line for line in server_output(log).splitlines() if fragment in line]


@COMMANDS
async def test_json_lines_one_access_line_per_request(
    migrated_database: Path, tmp_path: Path, command: Sequence[str]
) -> None:
    """Each request gets one `courtyard.access` object with its request id, method, path
    (no query string), status, duration and, once known, the caller's user id; uvicorn
    writes no access line of its own; every line of the output is one JSON object."""
    log = tmp_path / "server.log"
    environment = server_environment(
        own_database(migrated_database, tmp_path), COURTYARD_LOG_FORMAT="json"
    )
    with serving(environment, tmp_path, log, command=command) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            signed_up = await client.post(
                SIGNUP,
                json={"email": "logs@example.com", "password": PASSWORD, "name": "Logs"},
                headers={"X-Request-ID": "json-signup"},
            )
            assert signed_up.status_code == 201, signed_up.text
            user_id = signed_up.json()["user"]["id"]
            token = signed_up.json()["access_token"]
            me = await client.get(
                ME, headers={"Authorization": f"Bearer {token}", "X-Request-ID": "json-me"}
            )
            assert me.status_code == 200, me.text
            live = await client.get(
                "/health/live?token=s3cret-in-the-query", headers={"X-Request-ID": "json-live"}
            )
            assert live.status_code == 200
            anonymous = await client.get(ME, headers={"X-Request-ID": "json-anonymous"})
            assert anonymous.status_code == 401

    records = json_records(log)
    seen = {}
    for request_id in ("json-signup", "json-me", "json-live", "json-anonymous"):
        lines = access_records(records, request_id)
        assert len(lines) == 1, (request_id, server_output(log))
        [seen[request_id]] = lines
        assert seen[request_id]["level"] == "INFO"
        assert seen[request_id]["message"] == "request"
        duration = seen[request_id]["duration_ms"]
        assert isinstance(duration, float | int), seen[request_id]
        assert duration > 0, seen[request_id]
    assert {k: seen["json-me"][k] for k in ("method", "path", "status", "user_id")} == {
        "method": "GET",
        "path": ME,
        "status": 200,
        "user_id": user_id,
    }
    # A sign-up acts for the user it creates (core.caller.act_for).
    assert seen["json-signup"]["status"] == 201
    assert seen["json-signup"]["user_id"] == user_id
    assert seen["json-live"]["path"] == "/health/live"
    assert "user_id" not in seen["json-live"]
    assert "user_id" not in seen["json-anonymous"]
    assert seen["json-anonymous"]["status"] == 401
    assert "s3cret-in-the-query" not in server_output(log)
    assert not [r for r in records if r["logger"] == "uvicorn.access"], server_output(log)
    assert any(r["message"].startswith("Started server process") for r in records)


@COMMANDS
async def test_text_lines_read_as_key_value(tmp_path: Path, command: Sequence[str]) -> None:
    """The default format: the time, level, logger and request id once, then the message
    and its fields as key=value; Courtyard's own warnings (here: the development secret)
    come out in the same shape, never bare; uvicorn's access line is gone."""
    log = tmp_path / "server.log"
    environment = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'text.db'}",
        "COURTYARD_ENABLED_PLUGINS": "user",
        "COURTYARD_ENV": "development",  # warns about the development secret at startup
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with serving(environment, tmp_path, log, command=command) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            response = await client.get("/health/live", headers={"X-Request-ID": "text-live-1"})
            assert response.status_code == 200

    output = server_output(log)
    [line] = lines_with(log, "text-live-1")
    assert re.fullmatch(
        TEXT_LINE.pattern + r"request method=GET path=/health/live status=200 "
        r"duration_ms=\d+(\.\d+)?",
        line,
    ), line
    assert "INFO courtyard.access [request_id=text-live-1] " in line
    assert line.count("text-live-1") == 1
    [warning] = lines_with(log, "COURTYARD_SECRET_KEY is the public development default")
    assert " WARNING courtyard.app [request_id=-] " in warning
    for each in output.splitlines():
        assert TEXT_LINE.match(each), f"not a log line: {each!r}\n{output}"
    assert '"GET /health/live HTTP/1.1" 200' not in output, output


async def test_the_log_level_holds_for_loggers_with_a_level_of_their_own(tmp_path: Path) -> None:
    """`COURTYARD_LOG_LEVEL=WARNING` under plain uvicorn, whose loggers keep the INFO level
    its `--log-level` gave them: none of their INFO lines is written (nor an access line),
    while a warning is."""
    log = tmp_path / "server.log"
    environment = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'quiet.db'}",
        "COURTYARD_ENABLED_PLUGINS": "user",
        "COURTYARD_ENV": "development",  # warns about the development secret at startup
        "COURTYARD_LOG_FORMAT": "json",
        "COURTYARD_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with serving(environment, tmp_path, log, command=UVICORN) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            assert (await client.get("/health/live")).status_code == 200

    records = json_records(log)
    assert {r["level"] for r in records} == {"WARNING"}, server_output(log)
    assert any("COURTYARD_SECRET_KEY" in r["message"] for r in records)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_traceback_is_one_record(
    tmp_path: Path, dists: dict[str, Path], log_format: str
) -> None:
    """An unhandled error's traceback: escaped onto its line in text (so a collector that
    splits on newlines keeps it whole), a field of its object in JSON; the request id is
    there once, and the request's access line says 500."""
    log = tmp_path / "server.log"
    environment = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'boom.db'}",
        "COURTYARD_ENABLED_PLUGINS": "alpha",
        "COURTYARD_ENV": "test",
        "COURTYARD_LOG_FORMAT": log_format,
        "PYTHONPATH": os.pathsep.join([str(dists["main"]), str(PROJECT_ROOT)]),
    }
    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            response = await client.get("/api/v1/alpha/boom", headers={"X-Request-ID": "boom-1"})
            assert response.status_code == 500

    if log_format == "json":
        records = json_records(log)
        [error] = [r for r in records if r.get("exc_info") and r.get("request_id") == "boom-1"]
        assert error["level"] == "ERROR"
        assert error["exc_info"].startswith("Traceback (most recent call last):\n")
        assert "RuntimeError: secret internal detail" in error["exc_info"]
        [access] = access_records(records, "boom-1")
        assert access["status"] == 500
        return
    [error, access] = lines_with(log, "boom-1")
    assert TEXT_LINE.match(error), error
    assert " ERROR courtyard.request [request_id=boom-1] unhandled error on GET " in error
    assert "\\nTraceback (most recent call last):\\n" in error
    assert "RuntimeError: secret internal detail" in error
    assert error.count("boom-1") == 1
    assert " status=500 " in access
    for each in server_output(log).splitlines():
        assert TEXT_LINE.match(each), f"not a log line: {each!r}"


async def test_a_503_warning_names_the_request_once(tmp_path: Path) -> None:
    """The database is down: the warning the error handler logs carries the request id
    once (the line's own), not a second time inside its message."""
    log = tmp_path / "server.log"
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    environment = {
        "COURTYARD_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere",
        "COURTYARD_ENABLED_PLUGINS": "user,auth,mail",
        "COURTYARD_ENV": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": "down@example.com", "password": PASSWORD},
                headers={"X-Request-ID": "db-down-1"},
            )
            assert response.status_code == 503, response.text

    [warning, access] = lines_with(log, "db-down-1")
    assert " WARNING courtyard.errors [request_id=db-down-1] database unavailable: " in warning
    assert warning.count("db-down-1") == 1, warning
    assert " status=503 " in access


async def test_trace_id_of_the_active_span(migrated_database: Path, tmp_path: Path) -> None:
    """With COURTYARD_OPENTELEMETRY on and a tracer provider set up (here the SDK's, by the
    module that builds the app), a line logged during a traced request carries the trace's
    id: here the one the caller sent in `traceparent` (W3C Trace Context)."""
    pytest.importorskip("opentelemetry.sdk.trace", reason="the `telemetry` extra")
    (tmp_path / "traced_app.py").write_text(
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from core.app import create_app\n"
        "def app():\n"
        "    trace.set_tracer_provider(TracerProvider())\n"
        "    return create_app()\n"
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    log = tmp_path / "server.log"
    environment = server_environment(
        own_database(migrated_database, tmp_path),
        COURTYARD_LOG_FORMAT="json",
        COURTYARD_OPENTELEMETRY="true",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)]),
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "traced_app:app"]
    with serving(environment, tmp_path, log, command=command) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            response = await client.get(
                "/health/live",
                headers={
                    "X-Request-ID": "traced-1",
                    "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                },
            )
            assert response.status_code == 200

    [access] = access_records(json_records(log), "traced-1")
    assert access["trace_id"] == trace_id


async def test_a_log_config_of_ones_own_is_kept(tmp_path: Path) -> None:
    """`uvicorn --log-config` that configures the root logger: Courtyard adds no handler of
    its own (no line twice) and leaves the format to it; its access line still comes, as a
    record of `courtyard.access` with its fields."""
    config = tmp_path / "logging.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"own": {"format": "OWN %(name)s %(message)s"}},
                "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "own"}},
                "root": {"handlers": ["err"], "level": "INFO"},
            }
        )
    )
    log = tmp_path / "server.log"
    environment = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'own.db'}",
        "COURTYARD_ENABLED_PLUGINS": "user",
        "COURTYARD_ENV": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [*UVICORN, "--log-config", str(config)]
    with serving(environment, tmp_path, log, command=command) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            assert (await client.get("/health/live")).status_code == 200

    output = server_output(log)
    assert "OWN courtyard.access request\n" in output, output
    assert output.count("Application startup complete") == 1, output
    assert "OWN uvicorn.error Application startup complete" in output, output


def test_apps_built_one_after_another_do_not_stack_handlers(tmp_path: Path) -> None:
    """Several apps in one process (a test run, a script): one line per record, in the
    shape the newest app's settings name."""
    script = """
import logging
from core.app import create_app
from core.settings import CoreSettings

for log_format in ("text", "text", "json"):
    create_app(CoreSettings(
        env="test",
        database_url="sqlite+aiosqlite:///./stack.db",
        enabled_plugins=["user"],
        log_format=log_format,
    ))
logging.getLogger("courtyard.check").warning("first line\\nsecond line")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    record = json.loads(line)
    assert record["logger"] == "courtyard.check"
    assert record["message"] == "first line\nsecond line"


def test_an_unknown_log_format_is_one_clear_line(tmp_path: Path) -> None:
    result = run_courtyard(
        "serve",
        cwd=tmp_path,
        env={
            "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bad.db'}",
            "COURTYARD_LOG_FORMAT": "xml",
        },
    )
    assert_one_line_error(result, "COURTYARD_LOG_FORMAT", "'text' or 'json'", "xml")
