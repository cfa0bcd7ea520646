"""The whole sign-in life cycle over real HTTP, against `courtyard serve` in its own process.

Everything here is what a deployment runs: the `courtyard` console script migrates the
database and starts uvicorn, configured only through the environment, and a client talks
to it over TCP. Nothing is shared with the test process but the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.plugins.auth.conftest import AUTH, ME, PASSWORD, PLUGINS, bearer
from tests.support.courtyard_cli import PROJECT_ROOT, run_courtyard
from tests.support.problems import assert_problem
from tests.support.served import server_output, serving, wait_until_live


def server_environment(database_url: str) -> dict[str, str]:
    """The settings a deployment gives: environment variables only."""
    return {
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_ENV": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
    }


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
    assert migrated.stdout.splitlines()[-1].startswith("upgraded: user (base → "), migrated.stdout
    assert ", auth (base → " in migrated.stdout.splitlines()[-1], migrated.stdout
    log = tmp_path / "serve.log"

    with serving(server_environment(database_url), tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            try:
                await sign_in_life_cycle(client)
            except AssertionError as failure:
                raise AssertionError(
                    f"{failure}\n--- courtyard serve:\n{server_output(log)}"
                ) from None
        assert process.poll() is None, server_output(log)  # still serving: nothing crashed it
