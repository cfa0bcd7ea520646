"""Events: `notes` reacts to `user_deleted` and `user_restored`, and publishes
`note_created`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core.db import Database
from core.hookspecs import hookimpl
from plugins.user.api import User

from courtyard_notes.api import Note

API = "/api/v1/notes"
LIMIT = 2
Headers = Callable[..., dict[str, str]]
MakeUser = Callable[..., Awaitable[User]]


async def _live_titles(database: Database, owner_id: str) -> list[str]:
    async with database.read_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT title FROM notes_note WHERE owner_id = :owner AND deleted_at IS NULL "
                "ORDER BY title"
            ),
            {"owner": owner_id},
        )
        return [row.title for row in rows]


async def test_deleting_a_user_soft_deletes_their_notes_only(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    leaving, staying = await make_user(), await make_user()
    for title in ("a", "b"):
        await courtyard_client.post(API, json={"title": title}, headers=act_as(leaving.id))
    await courtyard_client.post(API, json={"title": "kept"}, headers=act_as(staying.id))
    database: Database = courtyard_app.state.database

    users = courtyard_app.state.kernel.container_of("user").service()
    await users.delete(leaving.id)  # `user_deleted` fires on its commit

    assert await _live_titles(database, leaving.id) == []
    assert await _live_titles(database, staying.id) == ["kept"]
    async with database.read_engine.connect() as connection:
        kept_rows = await connection.execute(
            text("SELECT count(*) FROM notes_note WHERE owner_id = :owner"), {"owner": leaving.id}
        )
        assert kept_rows.scalar_one() == 2  # hidden, not destroyed
    mine = await courtyard_client.get(API, headers=act_as(staying.id))
    assert [n["title"] for n in mine.json()["items"]] == ["kept"]


async def test_restoring_a_user_brings_back_only_the_notes_its_deletion_hid(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    me = await make_user()
    mine = act_as(me.id)
    kept = (await courtyard_client.post(API, json={"title": "kept"}, headers=mine)).json()
    binned = (await courtyard_client.post(API, json={"title": "binned"}, headers=mine)).json()
    await courtyard_client.delete(f"{API}/{binned['id']}", headers=mine)  # the user's choice
    users = courtyard_app.state.kernel.container_of("user").service()
    database: Database = courtyard_app.state.database

    await users.delete(me.id)
    hidden = await _hidden_by(database, me.id)
    await users.restore(me.id)  # `user_restored` fires on its commit

    assert hidden == {"kept": "user_deleted", "binned": None}
    assert await _live_titles(database, me.id) == ["kept"]
    assert await _hidden_by(database, me.id) == {"kept": None, "binned": None}
    listed = (await courtyard_client.get(API, headers=mine)).json()["items"]
    assert [n["id"] for n in listed] == [kept["id"]]
    gone = await courtyard_client.get(f"{API}/{binned['id']}", headers=mine)
    assert gone.status_code == 404
    # The per-user limit (2) counts the restored note: one more fits, then no more.
    assert (await courtyard_client.post(API, json={"title": "2"}, headers=mine)).status_code == 201
    assert (await courtyard_client.post(API, json={"title": "3"}, headers=mine)).status_code == 409


async def _hidden_by(database: Database, owner_id: str) -> dict[str, str | None]:
    async with database.read_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT title, hidden_by FROM notes_note WHERE owner_id = :owner"),
            {"owner": owner_id},
        )
        return {row.title: row.hidden_by for row in rows}


@pytest.fixture
def courtyard_plugin_settings() -> dict[str, dict[str, Any]]:
    return {"notes": {"max_per_user": LIMIT}}


class Listener:
    """A stand-in for another plugin listening to `note_created`: it records each note and
    whether a fresh connection could already read it (i.e. the event came after the commit)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.seen: list[tuple[Note, bool]] = []

    @hookimpl
    async def note_created(self, note: Note) -> None:
        async with self.database.read_engine.connect() as connection:
            found = await connection.execute(
                text("SELECT id FROM notes_note WHERE id = :id"), {"id": note.id}
            )
            self.seen.append((note, found.first() is not None))


@pytest.fixture
async def listener(courtyard_app: FastAPI) -> AsyncIterator[Listener]:
    """Registered with the app's plugin manager the way a plugin's hooks are."""
    listener = Listener(courtyard_app.state.database)
    courtyard_app.state.plugin_manager.register(listener, name="test-listener")
    yield listener
    courtyard_app.state.plugin_manager.unregister(name="test-listener")


async def test_note_created_fires_once_after_the_commit(
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
    listener: Listener,
) -> None:
    me = await make_user()

    response = await courtyard_client.post(
        API, json={"title": "hello", "tags": ["x"]}, headers=act_as(me.id)
    )

    assert response.status_code == 201
    [(note, committed)] = listener.seen
    assert committed
    assert note.model_dump(mode="json") == response.json()
    assert note.owner_id == me.id


async def test_a_refused_note_fires_nothing(
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
    listener: Listener,
) -> None:
    me = act_as((await make_user()).id)
    for title in ("one", "two"):
        await courtyard_client.post(API, json={"title": title}, headers=me)

    refused = await courtyard_client.post(API, json={"title": "three"}, headers=me)

    assert refused.status_code == 409
    assert [note.title for note, _ in listener.seen] == ["one", "two"]


def test_note_created_is_declared_for_other_plugins(courtyard_app: FastAPI) -> None:
    caller = courtyard_app.state.plugin_manager.hook.note_created
    assert caller.has_spec()
    assert caller.spec.argnames == ("note",)
