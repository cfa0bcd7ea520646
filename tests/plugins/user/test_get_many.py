"""`UserDirectory.get_many`: many users in one query, as another plugin asks for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from plugins.user import directory as directory_module
from plugins.user.api import User
from tests.plugins.user.conftest import UserApp

UNKNOWN = "usr_01JD8X0000000000000000000A"


async def get_many(users: UserApp, ids: Iterable[str], **options: Any) -> Mapping[str, User]:
    """What a plugin holding the `user_directory` input gets, in a read unit of its own."""
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.read_sessions() as session:
        found: Mapping[str, User] = await directory(session=session).get_many(ids, **options)
        return found


async def test_many_users_cost_one_query(users: UserApp, alice: dict[str, Any]) -> None:
    made = [alice] + [await users.create(f"u{n}@example.com", f"U {n}") for n in range(30)]
    ids = [user["id"] for user in made]

    async with users.counting_queries() as statements:
        found = await get_many(users, ids)

    assert len(statements) == 1
    assert set(found) == set(ids)
    assert found[alice["id"]].model_dump(mode="json") == alice
    assert {found[user["id"]].name for user in made} == {user["name"] for user in made}


async def test_absent_ids_are_left_out_and_repeats_asked_once(
    users: UserApp, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    inactive = await users.create("idle@example.com", "Idle", active=False)
    await users.app.state.kernel.container_of("user").service().delete(bob["id"])

    live = await get_many(users, [alice["id"], alice["id"], bob["id"], inactive["id"], UNKNOWN,
                                  "not-an-id", "nte_01JD8X0000000000000000000A"])  # fmt: skip
    everyone = await get_many(users, [alice["id"], bob["id"]], include_deleted=True)

    assert sorted(live) == sorted([alice["id"], inactive["id"]])  # deleted Bob is not there
    assert live[inactive["id"]].is_active is False  # live, though deactivated
    assert sorted(everyone) == sorted([alice["id"], bob["id"]])
    assert everyone[bob["id"]].deleted_at is not None


async def test_no_ids_ask_nothing(users: UserApp) -> None:
    async with users.counting_queries() as statements:
        found = await get_many(users, ["", "not-an-id"])

    assert found == {}
    assert statements == []


async def test_a_long_list_is_asked_in_chunks(
    users: UserApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory_module, "IDS_PER_QUERY", 2)
    ids = [(await users.create(f"u{n}@example.com", f"U {n}"))["id"] for n in range(5)]

    async with users.counting_queries() as statements:
        found = await get_many(users, ids)

    assert len(statements) == 3
    assert sorted(found) == sorted(ids)
