"""The whole sign-in life cycle over real HTTP, against `courtyard serve` in its own process.

Everything here is what a deployment runs: the `courtyard` console script migrates the
database and starts uvicorn, configured only through the environment, and a client talks
to it over TCP. Nothing is shared with the test process but the database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.plugins.auth.conftest import AUTH, ME, PASSWORD, PLUGINS, bearer
from tests.support.courtyard_cli import COURTYARD, PROJECT_ROOT, run_courtyard
from tests.support.problems import assert_problem

STARTUP_DEADLINE = 20.0  # seconds for `courtyard serve` to answer /health/live
STOP_DEADLINE = 10.0


def server_environment(database_url: str) -> dict[str, str]:
    """The settings a deployment gives: environment variables only."""
    return {
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_ENV": "test",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(database_url: str, cwd: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`courtyard serve` on a free local port, its stderr (and stdout) going to `log`;
    terminated (killed if it will not stop) however the block ends."""
    port = free_port()
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COURTYARD_") and key != "PYTHONPATH"
    }
    environ.update(server_environment(database_url), PYTHONPATH=str(PROJECT_ROOT))
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(COURTYARD), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_DEADLINE)


def server_output(log: Path) -> str:
    """What `courtyard serve` has printed so far (stdout and stderr), for failure messages."""
    return log.read_text()


async def wait_until_live(base_url: str, process: subprocess.Popen[str], log: Path) -> None:
    """Poll /health/live until it answers 200; fail (with the server's output) when the
    process exits or the deadline passes first."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"courtyard serve exited with {process.returncode}:\n{server_output(log)}"
                )
            try:
                if (await client.get("/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"courtyard serve did not answer within {STARTUP_DEADLINE:g}s:\n"
                    f"{server_output(log)}"
                )
            await asyncio.sleep(0.1)


async def sign_in_life_cycle(client: httpx.AsyncClient) -> None:
    """Sign up → read the account → refresh → log out → the refresh token and the session's
    access token are both refused."""
    signup = await client.post(
        f"{AUTH}/signup", json={"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}
    )
    assert signup.status_code == 201, signup.text
    signed_up: dict[str, Any] = signup.json()
    assert signed_up["token_type"] == "bearer"

    me = await client.get(ME, headers=bearer(signed_up))
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["id"]) == ("ann@example.com", signed_up["user"]["id"])

    refresh = await client.post(
        f"{AUTH}/refresh", json={"refresh_token": signed_up["refresh_token"]}
    )
    assert refresh.status_code == 200, refresh.text
    pair: dict[str, Any] = refresh.json()
    assert pair["refresh_token"] != signed_up["refresh_token"]
    assert pair["access_token"] != signed_up["access_token"]
    assert (await client.get(ME, headers=bearer(pair))).status_code == 200

    logout = await client.post(f"{AUTH}/logout", json={"refresh_token": pair["refresh_token"]})
    assert logout.status_code == 204, logout.text
    assert logout.content == b""

    after = await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(after, 401, "auth.invalid_refresh_token")
    for tokens in (pair, signed_up):  # every access token of the logged-out session
        refused = await client.get(ME, headers=bearer(tokens))
        assert_problem(refused, 401, "core.unauthorized")


async def test_a_user_signs_up_refreshes_and_logs_out_against_a_running_server(
    database_url: str, tmp_path: Path
) -> None:
    """Stops: a life cycle that only works in-process (ASGI transport): configuration read
    from the environment, the migrations `courtyard db upgrade` applies, the app factory
    uvicorn builds, real client addresses, and logout taking effect on a live server."""
    migrated = run_courtyard("db", "upgrade", cwd=tmp_path, env=server_environment(database_url))
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date: user, auth" in migrated.stdout, migrated.stdout
    log = tmp_path / "serve.log"

    with serving(database_url, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            try:
                await sign_in_life_cycle(client)
            except AssertionError as failure:
                raise AssertionError(
                    f"{failure}\n--- courtyard serve:\n{server_output(log)}"
                ) from None
        assert process.poll() is None, server_output(log)  # still serving: nothing crashed it
