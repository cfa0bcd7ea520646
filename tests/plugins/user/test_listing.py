"""`GET /api/v1/users`: cursor pages, filters, and a query count independent of the page size."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.user.conftest import USERS, UserApp, as_user
from tests.support.problems import assert_problem


async def add_users(users: UserApp, count: int, start: int = 0) -> list[str]:
    """`count` users in one transaction (through the directory other plugins use); their ids."""
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.write_sessions() as session:
        created = [
            await directory(session=session).create(f"user{n:04d}@example.com", f"User {n}")
            for n in range(start, start + count)
        ]
        await session.commit()
    return [user.id for user in created]


async def walk(users: UserApp, admin: dict[str, Any], query: str = "", **between: Any) -> list[str]:
    """Every id the list yields, following `next_cursor` page by page."""
    seen: list[str] = []
    cursor = None
    while True:
        url = f"{USERS}?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await users.client.get(url, headers=as_user(admin))
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        seen += [item["id"] for item in page["items"]]
        if between.get("each_page"):
            await between["each_page"]()
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_250_users_page_by_page_without_duplicates_or_gaps(
    users: UserApp, admin: dict[str, Any]
) -> None:
    ids = await add_users(users, 249) + [admin["id"]]

    seen = await walk(users, admin, "limit=20")

    assert len(seen) == 250
    assert sorted(seen, reverse=True) == seen  # newest first
    assert set(seen) == set(ids)


async def test_paging_is_stable_while_users_are_added(
    users: UserApp, admin: dict[str, Any]
) -> None:
    before = set(await add_users(users, 249)) | {admin["id"]}
    added: list[str] = []

    async def insert_more() -> None:
        added.extend(await add_users(users, 7, start=1000 + len(added)))

    seen = await walk(users, admin, "limit=30", each_page=insert_more)

    assert len(seen) == len(set(seen)) == 250  # no duplicate
    assert set(seen) == before  # no gap; rows added behind the cursor are for the next walk
    assert len(added) == 7 * 9


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_bounds_are_accepted(users: UserApp, admin: dict[str, Any], limit: int) -> None:
    await add_users(users, 2)
    page = (await users.client.get(f"{USERS}?limit={limit}", headers=as_user(admin))).json()
    assert len(page["items"]) == min(limit, 3)
    assert (page["next_cursor"] is None) == (limit >= 3)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=bogus", "cursor"),
        ("role=root", "role"),
        ("is_active=maybe", "is_active"),
        ("q=", "q"),
        ("q=a%00", "q"),
        ("q=%0Aadmin", "q"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(
    users: UserApp, admin: dict[str, Any], query: str, field: str
) -> None:
    response = await users.client.get(f"{USERS}?{query}", headers=as_user(admin))
    body = assert_problem(response, 422, "core.validation_error")
    assert [e["field"] for e in body["errors"]] == [field]


async def test_filters(users: UserApp, admin: dict[str, Any]) -> None:
    await users.create("Zoe.Quinn@Example.com", "Zoe Quinn")
    await users.create("zack@example.com", "Zack 100%_sure")
    await users.create("mia@example.com", "Mia Zoellner", active=False)
    gone = await users.create("zed@example.com", "Zed")
    await users.client.delete(f"{USERS}/{gone['id']}", headers=as_user(admin))

    async def emails(query: str) -> list[str]:
        response = await users.client.get(f"{USERS}?{query}", headers=as_user(admin))
        assert response.status_code == 200, response.text
        return sorted(item["email"] for item in response.json()["items"])

    assert await emails("q=zo") == ["Zoe.Quinn@Example.com", "mia@example.com"]  # prefix/name
    assert await emails("q=ZOE.Q") == ["Zoe.Quinn@Example.com"]  # ignoring case
    assert await emails("q=example") == []  # not an email prefix, not in a name
    assert await emails("q=100%25_") == ["zack@example.com"]  # % and _ are literal
    assert await emails("q=_") == ["zack@example.com"]
    assert await emails("role=admin") == ["admin@example.com"]
    assert await emails("is_active=false") == ["mia@example.com"]
    assert await emails("q=z&is_active=true") == ["Zoe.Quinn@Example.com", "zack@example.com"]
    assert await emails("q=zed") == []
    assert await emails("q=zed&include_deleted=true") == ["zed@example.com"]
    listed = await users.client.get(f"{USERS}?q=zed&include_deleted=true", headers=as_user(admin))
    assert listed.json()["items"][0]["deleted_at"] is not None


async def test_a_page_costs_the_same_queries_whatever_its_size(
    users: UserApp, admin: dict[str, Any]
) -> None:
    await add_users(users, 60)

    async with users.counting_queries() as small:
        page = await users.client.get(f"{USERS}?limit=2", headers=as_user(admin))
        assert len(page.json()["items"]) == 2
    async with users.counting_queries() as large:
        page = await users.client.get(f"{USERS}?limit=60", headers=as_user(admin))
        assert len(page.json()["items"]) == 60

    assert len(large) == len(small) <= 3, large  # principal check + the page (+ pre-ping)
