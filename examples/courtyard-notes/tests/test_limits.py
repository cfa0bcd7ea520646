"""Settings: `COURTYARD_NOTES__*`, and the per-user limit they set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core.kernel import Kernel
from core.settings import ConfigurationError, CoreSettings
from plugins.user.api import User

API = "/api/v1/notes"
Headers = Callable[..., dict[str, str]]
MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
def courtyard_plugin_settings() -> dict[str, dict[str, Any]]:
    return {"notes": {"max_per_user": 2, "max_body_length": 10}}


async def test_a_user_at_the_limit_gets_a_409_until_a_note_is_deleted(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me, other = act_as((await make_user()).id), act_as((await make_user()).id)
    first = (await courtyard_client.post(API, json={"title": "1"}, headers=me)).json()
    await courtyard_client.post(API, json={"title": "2"}, headers=me)

    refused = await courtyard_client.post(API, json={"title": "3"}, headers=me)

    assert refused.status_code == 409
    assert refused.json()["code"] == "notes.limit_reached"
    assert "2 notes" in refused.json()["detail"]
    assert (await courtyard_client.post(API, json={"title": "x"}, headers=other)).status_code == 201
    await courtyard_client.delete(f"{API}/{first['id']}", headers=me)
    assert (await courtyard_client.post(API, json={"title": "3"}, headers=me)).status_code == 201


async def test_concurrent_creates_never_pass_the_limit(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)

    responses = await asyncio.gather(
        *[courtyard_client.post(API, json={"title": f"n{i}"}, headers=me) for i in range(6)]
    )

    assert sorted(r.status_code for r in responses) == [201, 201, 409, 409, 409, 409]
    assert len((await courtyard_client.get(API, headers=me)).json()["items"]) == 2


async def test_many_users_creating_at_once_each_stop_at_the_limit(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    """Concurrent creates, some for an owner whose counter row exists and some for one
    whose row is made by this very race. On PostgreSQL (COURTYARD_TEST_DATABASE_URL) each
    request is a transaction on its own connection, so they really overlap; a count read
    before the insert would let several through."""
    users = [await make_user() for _ in range(3)]
    first = await courtyard_client.post(API, json={"title": "n"}, headers=act_as(users[0].id))
    assert first.status_code == 201  # ann's counter row exists before the race; the others' not

    responses = await asyncio.gather(
        *[
            courtyard_client.post(API, json={"title": f"n{i}"}, headers=act_as(user.id))
            for i in range(4)
            for user in users
        ]
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409] * 7, [r.text for r in responses if r.status_code >= 500]
    async with courtyard_app.state.database.read_engine.connect() as connection:
        live = await connection.execute(
            text(
                "SELECT owner_id, count(*) FROM notes_note WHERE deleted_at IS NULL "
                "GROUP BY owner_id"
            )
        )
        counted = await connection.execute(text("SELECT owner_id, live FROM notes_owner"))
        expected = {user.id: 2 for user in users}
        assert {owner: n for owner, n in live} == expected
        assert {owner: n for owner, n in counted} == expected  # the counter agrees


async def test_the_configured_body_length_is_a_422_naming_the_body(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)
    note = await courtyard_client.post(API, json={"title": "t", "body": "x" * 10}, headers=me)

    too_long = [
        await courtyard_client.post(API, json={"title": "t", "body": "x" * 11}, headers=me),
        await courtyard_client.patch(
            f"{API}/{note.json()['id']}", json={"body": "x" * 11}, headers=me
        ),
    ]

    assert note.status_code == 201
    for response in too_long:
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["body"]


def _kernel() -> Kernel:
    settings = CoreSettings(
        env="test", database_url="sqlite+aiosqlite:///:memory:", enabled_plugins="user,notes"
    )
    return Kernel.build(settings)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_NOTES__MAX_PER_USER", "7")

    settings = _kernel().plugin_settings["notes"]

    assert settings.max_per_user == 7  # type: ignore[attr-defined]
    assert settings.max_body_length == 10_000  # type: ignore[attr-defined]


def test_a_bad_setting_stops_startup_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURTYARD_NOTES__MAX_PER_USER", "0")

    with pytest.raises(ConfigurationError, match="COURTYARD_NOTES__MAX_PER_USER"):
        _kernel()
