"""Many requests racing for one thing, on every backend, through the real ASGI app.

Already covered elsewhere, so not repeated here:
- 20 concurrent admin-created users with one email: tests/plugins/user/test_concurrency.py
  (`test_20_concurrent_signups_of_one_email_create_exactly_one_user`, POST /users);
- two admins demoting each other at once: the same module;
- two refreshes of one token, five rounds: tests/plugins/auth/test_refresh.py;
- a login or password change racing an account change: tests/plugins/auth/test_races.py.
This module covers the public signup, ten-way refreshes and completes, and many admins
demoting one another at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import AppFactory
from tests.resilience.conftest import AUTH, PLUGINS, UPLOADS, USERS, bearer, signed_up, signup
from tests.support.problems import assert_problem

pytestmark = pytest.mark.resilience

# How a demotion may be refused. No 503: admin-changing transactions serialise on one
# lock, so none of them is a deadlock victim (they were, before that lock existed).
REFUSED = {403: "core.forbidden", 409: "user.last_admin"}

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def client(app_client: AppFactory, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    uploads = {"upload": {"local_root": tmp_path / "uploads"}}
    async with app_client(enabled_plugins=PLUGINS, plugin_settings=uploads) as client:
        yield client


async def rows(client: httpx.AsyncClient, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows straight from the database, to check what was really stored."""
    engine = client.app.state.database.write_engine  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(query), params)).all()]


async def test_20_concurrent_signups_of_one_email_make_one_account(
    client: httpx.AsyncClient,
) -> None:
    spellings = ["race@example.com", "RACE@example.com", "Race@Example.COM"]

    responses = await asyncio.gather(
        *(signup(client, spellings[n % len(spellings)], f"Racer {n}") for n in range(20))
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "user.email_taken")
    [winner] = [r.json() for r in responses if r.status_code == 201]
    assert (await client.get(f"{USERS}/me", headers=bearer(winner))).status_code == 200
    [(users, credentials, sessions)] = await rows(
        client,
        'SELECT (SELECT count(*) FROM "user" WHERE lower(email) = :e), '
        "(SELECT count(*) FROM auth_credential), (SELECT count(*) FROM auth_session)",
        e="race@example.com",
    )
    assert (users, credentials, sessions) == (1, 1, 1)  # no loser left a password or session


async def test_10_concurrent_refreshes_of_one_token_let_exactly_one_through(
    client: httpx.AsyncClient,
) -> None:
    tokens = await signed_up(client, "ann@example.com")

    responses = await asyncio.gather(
        *(
            client.post(f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]})
            for _ in range(10)
        )
    )

    assert Counter(r.status_code for r in responses) == {200: 1, 401: 9}
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "auth.invalid_refresh_token")
    [pair] = [r.json() for r in responses if r.status_code == 200]
    # Within the reuse grace the losers do not revoke the session: the winner carries on.
    assert (await client.get(f"{USERS}/me", headers=bearer(pair))).status_code == 200
    again = await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200, again.text
    [(minted,)] = await rows(client, "SELECT count(*) FROM auth_refresh_token")
    assert minted == 3  # the signup's, the winner's, and the one just refreshed


async def test_10_concurrent_completes_of_one_upload_make_it_ready_once(
    client: httpx.AsyncClient,
) -> None:
    owner = bearer(await signed_up(client, "ann@example.com"))
    granted = await client.post(
        UPLOADS,
        headers=owner,
        json={"filename": "a.png", "content_type": "image/png", "size": len(PNG)},
    )
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert grant["method"] == "PUT"
    sent = await client.put(grant["url"], content=PNG, headers=grant["headers"])
    assert sent.status_code == 204, sent.text
    upload_id = grant["upload"]["id"]

    responses = await asyncio.gather(
        *(client.post(f"{UPLOADS}/{upload_id}/complete", headers=owner) for _ in range(10))
    )

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 9}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "upload.already_completed")
    assert await rows(client, "SELECT status FROM upload_file") == [("ready",)]
    read = await client.get(f"{UPLOADS}/{upload_id}", headers=owner)
    assert (read.status_code, read.json()["status"]) == (200, "ready")


async def test_admins_demoting_every_admin_at_once_never_leave_none(
    client: httpx.AsyncClient,
) -> None:
    """Five admins each demote all five (themselves included), 25 requests at once: some
    succeed, the rest are refused (409 last admin, or 403 once the actor has lost the
    role), and at least one active admin is left. Repeated to make the overlap real."""
    admins = [await signed_up(client, f"admin{n}@example.com") for n in range(5)]
    for round_ in range(3):
        await _promote(client, admins)

        responses = await asyncio.gather(
            *(
                client.patch(
                    f"{USERS}/{target['user']['id']}", headers=bearer(actor), json={"role": "user"}
                )
                for actor in admins
                for target in admins
            )
        )

        for response in responses:
            if response.status_code == 200:
                assert response.json()["role"] == "user"
            else:
                assert_problem(response, response.status_code, REFUSED[response.status_code])
        remaining = await rows(
            client,
            "SELECT id FROM \"user\" WHERE role = 'admin' AND is_active AND deleted_at IS NULL",
        )
        assert len(remaining) >= 1, round_
        assert 200 in {r.status_code for r in responses}, round_


async def _promote(client: httpx.AsyncClient, admins: list[dict[str, Any]]) -> None:
    engine = client.app.state.database.write_engine  # type: ignore[attr-defined]
    async with engine.begin() as connection:
        for admin in admins:
            await connection.execute(
                text("UPDATE \"user\" SET role = 'admin' WHERE id = :id"),
                {"id": admin["user"]["id"]},
            )
