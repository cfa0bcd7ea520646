"""The HTTP API a note's owner uses: create, read, list, change, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiodataloader import DataLoader
from fastapi import FastAPI
from sqlalchemy import event, text

from plugins.user.api import User

from courtyard_notes.api import Note
from courtyard_notes.router import listed

API = "/api/v1/notes"
Headers = Callable[..., dict[str, str]]
MakeUser = Callable[..., Awaitable[User]]


async def test_a_user_writes_reads_changes_and_deletes_a_note(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)

    created = await courtyard_client.post(
        API, json={"title": " Groceries ", "body": "milk\neggs", "tags": ["Home", "home", "todo"]},
        headers=me,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    note = created.json()
    assert note["id"].startswith("nte_")
    assert note["title"] == "Groceries"
    assert note["body"] == "milk\neggs"
    assert note["tags"] == ["home", "todo"]

    read = await courtyard_client.get(f"{API}/{note['id']}", headers=me)
    assert read.status_code == 200
    assert read.json() == note

    changed = await courtyard_client.patch(
        f"{API}/{note['id']}", json={"body": "milk", "tags": ["shopping"]}, headers=me
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Groceries"
    assert (changed.json()["body"], changed.json()["tags"]) == ("milk", ["shopping"])
    assert changed.json()["updated_at"] > note["updated_at"]
    assert (await courtyard_client.get(f"{API}/{note['id']}", headers=me)).json() == changed.json()

    deleted = await courtyard_client.delete(f"{API}/{note['id']}", headers=me)
    assert deleted.status_code == 204
    assert deleted.content == b""


async def test_a_change_to_nothing_new_leaves_the_note_as_it_was(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)
    note = (await courtyard_client.post(API, json={"title": "t", "tags": ["a"]}, headers=me)).json()

    same = await courtyard_client.patch(
        f"{API}/{note['id']}", json={"title": "t", "tags": ["A"]}, headers=me
    )

    assert same.status_code == 200
    assert same.json() == note


async def test_a_soft_deleted_note_is_gone_from_the_api_but_kept_in_the_database(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    me = act_as((await make_user()).id)
    note = (await courtyard_client.post(API, json={"title": "old"}, headers=me)).json()

    assert (await courtyard_client.delete(f"{API}/{note['id']}", headers=me)).status_code == 204

    for response in [
        await courtyard_client.get(f"{API}/{note['id']}", headers=me),
        await courtyard_client.patch(f"{API}/{note['id']}", json={"title": "x"}, headers=me),
        await courtyard_client.delete(f"{API}/{note['id']}", headers=me),
    ]:
        assert response.status_code == 404
        assert response.json()["code"] == "notes.not_found"
    assert (await courtyard_client.get(API, headers=me)).json()["items"] == []
    async with courtyard_app.state.database.read_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT title, deleted_at FROM notes_note WHERE id = :id"), {"id": note["id"]}
            )
        ).one()
    assert row.title == "old"
    assert row.deleted_at is not None


async def test_notes_are_listed_newest_first_a_page_at_a_time(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)
    ids = [
        (await courtyard_client.post(API, json={"title": f"n{i}"}, headers=me)).json()["id"]
        for i in range(5)
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await courtyard_client.get(API, params=params, headers=me)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))
    assert pages == 3


async def test_each_listed_note_carries_its_author(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    ann = await make_user(name="Ann")
    me = act_as(ann.id)
    note = (await courtyard_client.post(API, json={"title": "t"}, headers=me)).json()

    listed = (await courtyard_client.get(API, headers=me)).json()["items"]

    assert listed == [{**note, "author": {"id": ann.id, "name": "Ann"}}]
    assert "author" not in (await courtyard_client.get(f"{API}/{note['id']}", headers=me)).json()


@asynccontextmanager
async def sent_statements(app: FastAPI) -> AsyncIterator[list[str]]:
    """The SQL statements the app sends through SQLAlchemy inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])  # (connection, cursor, statement, parameters, context, many)

    engine = app.state.database.write_engine.sync_engine  # reads use it too: no replica here
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_page_of_1_and_a_page_of_50_cost_the_same_statements(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    """The page, its tags and its author: as many statements for 50 notes as for one."""
    ann = await make_user(name="Ann")
    me = act_as(ann.id)
    for i in range(51):
        await courtyard_client.post(API, json={"title": f"n{i}", "tags": [f"t{i}"]}, headers=me)

    async with sent_statements(courtyard_app) as for_one:
        one = await courtyard_client.get(API, params={"limit": "1"}, headers=me)
    async with sent_statements(courtyard_app) as for_fifty:
        fifty = await courtyard_client.get(API, params={"limit": "50"}, headers=me)

    assert [len(page.json()["items"]) for page in (one, fifty)] == [1, 50]
    assert {n["author"]["name"] for n in fifty.json()["items"]} == {"Ann"}
    assert [n["tags"] for n in fifty.json()["items"]] == [[f"t{i}"] for i in range(50, 0, -1)]
    assert len(for_fifty) == len(for_one)
    # The page, its tags and its authors (and, on SQLite, the per-request account check).
    assert 3 <= len(for_fifty) <= 4, for_fifty


async def test_the_authors_of_a_listing_cost_one_query_however_many_wrote_it(
    courtyard_app: FastAPI,
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
) -> None:
    """A listing shows only the caller's notes, so one author per page through the API:
    the listing's own author loading (`listed`, over a per-request `DataLoader` of
    `NoteService.authors`, as the route builds it) is given 50 notes of five authors. One
    query for one note, one for all 50, each note with its own author."""
    names = ["Ann", "Bob", "Cyd", "Dee", "Eve"]
    authors = {name: await make_user(name=name) for name in names}
    notes: list[Note] = []
    for i in range(50):
        writer = authors[names[i % len(names)]]
        created = await courtyard_client.post(
            API, json={"title": f"n{i}"}, headers=act_as(writer.id)
        )
        assert created.status_code == 201, created.text
        notes.append(Note.model_validate(created.json()))
    service = courtyard_app.state.kernel.container_of("notes").service()

    async with sent_statements(courtyard_app) as for_one:
        [alone] = await listed(notes[:1], DataLoader(service.authors))
    async with sent_statements(courtyard_app) as for_fifty:
        page = await listed(notes, DataLoader(service.authors))

    assert len(for_one) == len(for_fifty) == 1, for_fifty
    assert alone.author is not None
    assert alone.author.name == "Ann"
    assert [(n.id, n.author.id if n.author else None) for n in page] == [
        (note.id, note.owner_id) for note in notes
    ]
    assert [n.author.name if n.author else None for n in page] == [
        names[i % len(names)] for i in range(50)
    ]


async def test_the_list_can_be_narrowed_to_a_tag(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)
    for title, tags in [("a", ["work"]), ("b", ["home"]), ("c", ["work", "urgent"]), ("d", [])]:
        await courtyard_client.post(API, json={"title": title, "tags": tags}, headers=me)

    work = (await courtyard_client.get(API, params={"tag": "Work"}, headers=me)).json()
    none = (await courtyard_client.get(API, params={"tag": "nothing"}, headers=me)).json()

    assert [(n["title"], n["tags"]) for n in work["items"]] == [
        ("c", ["urgent", "work"]),
        ("a", ["work"]),
    ]
    assert none == {"items": [], "next_cursor": None}


async def test_a_user_sees_only_their_own_notes(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    """Someone else's note answers exactly like a note that does not exist: 404."""
    alice, bob = act_as((await make_user()).id), act_as((await make_user()).id)
    secret = (await courtyard_client.post(API, json={"title": "secret"}, headers=alice)).json()
    await courtyard_client.post(API, json={"title": "bob's"}, headers=bob)

    attempts = [
        await courtyard_client.get(f"{API}/{secret['id']}", headers=bob),
        await courtyard_client.patch(f"{API}/{secret['id']}", json={"title": "x"}, headers=bob),
        await courtyard_client.delete(f"{API}/{secret['id']}", headers=bob),
        await courtyard_client.get(f"{API}/nte_01JD8X0000000000000000000A", headers=bob),
        await courtyard_client.get(f"{API}/not-an-id", headers=bob),
    ]

    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "notes.not_found"
    bobs = (await courtyard_client.get(API, headers=bob)).json()["items"]
    assert [n["title"] for n in bobs] == ["bob's"]
    untouched = await courtyard_client.get(f"{API}/{secret['id']}", headers=alice)
    assert untouched.json()["title"] == "secret"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", API), ("POST", API), ("GET", f"{API}/nte_01JD8X0000000000000000000A")],
)
async def test_without_a_principal_every_route_answers_401(
    courtyard_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await courtyard_client.request(method, path, json={"title": "x"})

    assert response.status_code == 401
    assert response.json()["code"] == "core.unauthorized"


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("POST", {"body": "no title"}, "title"),
        ("POST", {"title": "   "}, "title"),
        ("POST", {"title": "x" * 201}, "title"),
        ("POST", {"title": "line\u0000break"}, "title"),
        ("POST", {"title": "x", "body": "nul\u0000"}, "body"),
        ("POST", {"title": "x", "colour": "red"}, "colour"),
        ("POST", {"title": "x", "tags": ["ok", "two words"]}, "tags.1"),
        ("POST", {"title": "x", "tags": ["x" * 33]}, "tags.0"),
        ("POST", {"title": "x", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ("POST", {"title": "x", "tags": "one"}, "tags"),
        ("PATCH", {"title": None}, "title"),
        ("PATCH", {"id": "nte_01JD8X0000000000000000000A"}, "id"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field(
    courtyard_client: httpx.AsyncClient,
    act_as: Headers,
    make_user: MakeUser,
    method: str,
    body: dict[str, object],
    field: str,
) -> None:
    me = act_as((await make_user()).id)
    path = API
    if method == "PATCH":
        note = await courtyard_client.post(API, json={"title": "t"}, headers=me)
        path = f"{API}/{note.json()['id']}"

    response = await courtyard_client.request(method, path, json=body, headers=me)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "core.validation_error"
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_a_bad_query_is_a_422_naming_the_parameter(
    courtyard_client: httpx.AsyncClient, act_as: Headers, make_user: MakeUser
) -> None:
    me = act_as((await make_user()).id)

    cases = [({"limit": "0"}, "limit"), ({"tag": "a b"}, "tag"), ({"cursor": "x"}, "cursor")]
    for params, field in cases:
        response = await courtyard_client.get(API, params=params, headers=me)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
