"""User events fire once, after the commit; a failing listener never undoes the change.

`userwatch` (a test plugin) records each event and whether a fresh session already saw the
change when the listener ran, i.e. whether it was committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from core.errors import ConflictError
from core.logging import RequestIdFilter
from tests.plugins.user.conftest import PLUGINS, USERS, UserApp, as_user
from tests.support.problems import assert_problem


async def test_each_change_fires_its_event_once_after_commit(
    users: UserApp, admin: dict[str, Any]
) -> None:
    created = await users.client.post(
        USERS, headers=as_user(admin), json={"email": "carol@example.com", "name": "Carol"}
    )
    carol = created.json()
    url = f"{USERS}/{carol['id']}"
    await users.client.patch(url, headers=as_user(admin), json={"name": "Carol B", "role": "user"})
    await users.client.delete(url, headers=as_user(admin))
    await users.client.post(f"{url}/restore", headers=as_user(admin))

    events = [e for e in await users.events() if e["user_id"] == carol["id"]]
    assert events == [
        {"event": "user_created", "user_id": carol["id"], "email": "carol@example.com",
         "visible": True},
        {"event": "user_updated", "user_id": carol["id"], "changes": {"name": "Carol B"},
         "visible": True},
        {"event": "user_deleted", "user_id": carol["id"], "visible": True},
        {"event": "user_restored", "user_id": carol["id"], "visible": True},
    ]  # fmt: skip


async def test_delete_me_fires_user_deleted(users: UserApp, alice: dict[str, Any]) -> None:
    await users.client.delete(f"{USERS}/me", headers=as_user(alice))
    assert (await users.events())[-1] == {
        "event": "user_deleted", "user_id": alice["id"], "visible": True
    }  # fmt: skip


async def test_refused_changes_fire_nothing(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    before = await users.events()

    taken = await users.client.post(
        USERS, headers=as_user(admin), json={"email": "alice@EXAMPLE.com", "name": "Dup"}
    )
    last_admin = await users.client.patch(
        f"{USERS}/{admin['id']}", headers=as_user(admin), json={"role": "user"}
    )
    unchanged = await users.client.patch(
        f"{USERS}/me", headers=as_user(alice), json={"name": "Alice"}
    )

    assert (taken.status_code, last_admin.status_code, unchanged.status_code) == (409, 409, 200)
    assert await users.events() == before


async def test_work_in_another_plugins_transaction_fires_on_its_commit(
    users: UserApp,
) -> None:
    response = await users.client.post(
        "/api/v1/userwatch/enrol",
        json={"email": "dan@example.com", "name": "Dan", "verified": True, "active": False},
    )

    assert response.status_code == 201, response.text
    dan = response.json()
    assert (dan["email_verified"], dan["is_active"]) == (True, False)
    assert [(e["event"], e.get("changes"), e["visible"]) for e in await users.events()] == [
        ("user_created", None, True),
        ("user_updated", {"email_verified": True}, True),
        ("user_updated", {"is_active": False}, True),
    ]


async def test_nothing_fires_and_nothing_stays_when_the_callers_transaction_fails(
    users: UserApp,
) -> None:
    response = await users.client.post(
        "/api/v1/userwatch/enrol",
        json={"email": "erin@example.com", "name": "Erin", "fail_before_commit": True},
    )

    assert_problem(response, 400, "userwatch.failed")
    assert await users.rows('SELECT id FROM "user"') == []
    assert await users.events() == []


@pytest.fixture
async def failing_listener(user_dists: None, app_client: Any) -> Any:
    async with app_client(
        enabled_plugins=PLUGINS, plugin_settings={"userwatch": {"fail_listener": True}}
    ) as client:
        yield UserApp(client)


async def test_a_failing_listener_is_logged_and_the_change_stands(
    failing_listener: UserApp, caplog: pytest.LogCaptureFixture
) -> None:
    users = failing_listener
    alice = await users.create("alice@example.com", "Alice")  # its listener failed too
    caplog.set_level(logging.ERROR, logger="courtyard.events")
    caplog.handler.addFilter(RequestIdFilter())  # as `courtyard serve` configures logging
    caplog.clear()

    response = await users.client.patch(
        f"{USERS}/me", headers=as_user(alice), json={"name": "Alice B"}
    )

    assert response.status_code == 200, response.text
    assert await users.rows('SELECT name FROM "user"') == [("Alice B",)]
    [record] = [r for r in caplog.records if r.name == "courtyard.events"]
    assert record.getMessage() == "plugin 'userwatch' failed handling event 'user_updated'"
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert "userwatch listener failed on user_updated" in str(record.exc_info[1])
    assert [e["event"] for e in await users.events()] == ["user_created", "user_updated"]


async def test_the_public_api_finds_users_by_email_ignoring_case_and_deleted(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    found = await users.client.get("/api/v1/userwatch/by-email?email=ALICE@example.COM")
    assert (found.status_code, found.json()) == (200, alice)

    await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))

    for url in (
        "/api/v1/userwatch/by-email?email=alice@example.com",
        f"/api/v1/userwatch/by-id/{alice['id']}",
        "/api/v1/userwatch/by-id/garbage",
        "/api/v1/userwatch/by-email?email=alice%00@example.com",
    ):
        assert_problem(await users.client.get(url), 404, "user.not_found")


async def test_the_public_api_refuses_a_taken_email(users: UserApp, alice: dict[str, Any]) -> None:
    response = await users.client.post(
        "/api/v1/userwatch/enrol", json={"email": "alice@example.COM", "name": "Dup"}
    )
    assert_problem(response, 409, "user.email_taken")
    assert await users.rows('SELECT count(*) FROM "user"') == [(1,)]


# Another plugin's own transaction handling: events follow the transaction, however it ends.


async def created_emails(users: UserApp) -> list[str]:
    return [e["email"] for e in await users.events() if e["event"] == "user_created"]


async def test_a_transaction_committed_by_begin_fires_its_events(users: UserApp) -> None:
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.write_sessions() as session:
        async with session.begin():
            await directory(session=session).create("fay@example.com", "Fay")
        assert await created_emails(users) == []  # at the latest when the session closes
    assert await created_emails(users) == ["fay@example.com"]
    assert [e["visible"] for e in await users.events()] == [True]


async def test_a_rolled_back_transaction_fires_nothing_even_if_the_session_commits_later(
    users: UserApp,
) -> None:
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.write_sessions() as session:

        async def give_up() -> None:
            async with session.begin():
                await directory(session=session).create("ghost@example.com", "Ghost")
                raise RuntimeError("the caller gives up")

        with pytest.raises(RuntimeError):
            await give_up()
        await directory(session=session).create("gus@example.com", "Gus")
        await session.commit()

    assert await created_emails(users) == ["gus@example.com"]
    assert await users.rows('SELECT email FROM "user"') == [("gus@example.com",)]


async def test_a_rolled_back_savepoint_drops_its_events_and_keeps_the_rest(
    users: UserApp,
) -> None:
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.write_sessions() as session:
        await directory(session=session).create("kept@example.com", "Kept")

        async def undo() -> None:
            async with session.begin_nested():
                await directory(session=session).create("undone@example.com", "Undone")
                raise RuntimeError("undo the savepoint")

        with pytest.raises(RuntimeError):
            await undo()
        await session.commit()

    assert await created_emails(users) == ["kept@example.com"]
    assert await users.rows('SELECT email FROM "user"') == [("kept@example.com",)]


async def test_a_transaction_rolled_back_after_a_released_savepoint_fires_nothing(
    users: UserApp,
) -> None:
    """Each create runs its insert in a savepoint of its own. Releasing Ida's must not
    make Hal's event, queued before it, due: both go with the transaction's rollback."""
    directory = users.app.state.kernel.container_of("user").directory
    async with users.app.state.database.write_sessions() as session:
        await directory(session=session).create("hal@example.com", "Hal")
        await directory(session=session).create("ida@example.com", "Ida")
        await session.rollback()

    assert await created_emails(users) == []
    assert await users.rows('SELECT email FROM "user"') == []


async def test_losing_the_email_race_keeps_the_callers_earlier_work(
    users: UserApp, database_url: str
) -> None:
    """The insert that loses runs in a savepoint: only it is undone, and the caller may go on.

    Only PostgreSQL lets the two transactions overlap; SQLite serialises writers, so there
    the loser sees the winner's row before inserting and is refused without a race.
    """
    directory = users.app.state.kernel.container_of("user").directory
    database = users.app.state.database
    sqlite = database_url.startswith("sqlite")
    async with database.write_sessions() as winner, database.write_sessions() as caller:
        await directory(session=winner).create("race@example.com", "Winner")  # not committed
        if sqlite:  # the caller could not even begin while the winner holds the lock
            await winner.commit()
        await directory(session=caller).create("first@example.com", "First")

        async def lose() -> None:
            with pytest.raises(ConflictError) as refused:
                await directory(session=caller).create("RACE@example.com", "Loser")
            assert refused.value.code == "user.email_taken"

        if sqlite:
            await lose()
        else:
            losing = asyncio.create_task(lose())  # blocks on the winner's uncommitted row
            await asyncio.sleep(0.2)
            assert not losing.done()
            await winner.commit()
            await losing
        await caller.commit()

    assert sorted(await created_emails(users)) == ["first@example.com", "race@example.com"]
    assert sorted(await users.rows('SELECT email FROM "user"')) == [
        ("first@example.com",), ("race@example.com",)
    ]  # fmt: skip
