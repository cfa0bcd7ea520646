"""`courtyard users …`, run as a real subprocess against a migrated database on each backend."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from core.app import create_app
from core.settings import CoreSettings
from plugins.user.models import UserRecord
from tests.support.courtyard_cli import assert_one_line_error, parse_table, rows_by, run_courtyard
from tests.support.databases import app_engine

Courtyard = Callable[..., subprocess.CompletedProcess[str]]

HEADERS = ["id", "email", "name", "role", "active", "verified", "deleted"]
ERROR = "courtyard: error: "


@pytest.fixture
def courtyard(database_url: str, tmp_path: Path) -> Courtyard:
    """`courtyard(*args, enabled="user", **env)` in the test's folder, on `database_url`.

    `enabled=None` leaves COURTYARD_ENABLED_PLUGINS to the suite (every built-in plugin,
    `tests.support.plugin_selection`).
    """

    def run(
        *args: str, enabled: str | None = "user", **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = {"COURTYARD_DATABASE_URL": database_url}
        if enabled is not None:
            environ["COURTYARD_ENABLED_PLUGINS"] = enabled
        return run_courtyard(*args, cwd=tmp_path, env={**environ, **env})

    return run


@pytest.fixture
def users(courtyard: Courtyard) -> Courtyard:
    """`courtyard`, once `courtyard db upgrade` has created the `user` table."""
    ok(courtyard("db", "upgrade"))
    return courtyard


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result
    assert result.stderr == ""
    return result.stdout


def listing(users: Courtyard, *options: str) -> list[dict[str, str]]:
    """The rows of `courtyard users list OPTIONS`, after checking its headers."""
    stdout = ok(users("users", "list", *options))
    assert stdout.splitlines()[0].split() == HEADERS
    return parse_table(stdout)


def emails(rows: list[dict[str, str]]) -> list[str]:
    return [row["email"] for row in rows]


def role_and_active(rows: list[dict[str, str]], email: str) -> tuple[str, str]:
    row = rows_by(rows, "email")[email]
    return row["role"], row["active"]


def create(users: Courtyard, email: str, name: str, *flags: str) -> str:
    """Create an account through the CLI; its id, read from the confirmation line."""
    line = ok(users("users", "create", email, "--name", name, *flags))
    role = "admin" if "--admin" in flags else "user"
    found = re.fullmatch(rf"created {role} {re.escape(email)} \((usr_\w+)\)\n", line)
    assert found, line
    return found.group(1)


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A command refused by the plugin's rules: status 1 and one line on stderr."""
    return assert_one_line_error(result, *fragments, status=1)


def help_commands(stdout: str) -> list[str]:
    """The command names in the "Commands" panel of `courtyard --help`."""
    panel = stdout.split("Commands", 1)[1]
    return re.findall(r"^\W*(\w+) {2,}\S", panel, flags=re.MULTILINE)


def test_created_users_are_listed_newest_first_with_the_email_as_given(
    users: Courtyard,
) -> None:
    ann = create(users, "Ann@Example.COM", "Ann Smith")
    bob = create(users, "bob@example.com", "Bob Jones", "--admin")

    rows = listing(users)

    assert [row["id"] for row in rows] == [bob, ann]
    assert rows[1] == {
        "id": ann,
        "email": "Ann@Example.COM",
        "name": "Ann Smith",
        "role": "user",
        "active": "yes",
        "verified": "no",
    }  # the empty "deleted" cell ends the line
    assert (rows[0]["role"], rows[0]["active"]) == ("admin", "yes")


def test_list_filters_by_email_prefix_or_name_substring_and_by_role(users: Courtyard) -> None:
    create(users, "Ann@Example.COM", "Ann Smith")
    create(users, "bob@example.com", "Bob Annan", "--admin")
    create(users, "dave@annex.org", "Dave")  # "ann" inside the email, not at its start

    assert emails(listing(users, "--q", "aNN")) == ["bob@example.com", "Ann@Example.COM"]
    assert emails(listing(users, "--q", "SMITH")) == ["Ann@Example.COM"]
    assert emails(listing(users, "--q", "%")) == []  # a literal character, not a wildcard
    assert emails(listing(users, "--role", "admin")) == ["bob@example.com"]
    assert emails(listing(users, "--q", "ann", "--role", "user")) == ["Ann@Example.COM"]


def test_list_refuses_an_unknown_role_without_a_traceback(users: Courtyard) -> None:
    result = users("users", "list", "--role", "x")

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "Invalid value for --role: use 'user' or 'admin'" in result.stderr


def test_create_refuses_an_email_already_used_in_another_case(users: Courtyard) -> None:
    ann = create(users, "Ann@Example.COM", "Ann")

    line = assert_refused(users("users", "create", "ann@example.com", "--name", "Other"))

    assert line == f"{ERROR}The email ann@example.com is already in use"
    assert [(row["id"], row["name"]) for row in listing(users)] == [(ann, "Ann")]


def test_create_refuses_a_malformed_email_in_one_line_saying_why(users: Courtyard) -> None:
    line = assert_refused(users("users", "create", "not-an-email", "--name", "Nobody"))
    assert line.startswith(f"{ERROR}Invalid input: email: not a valid email address")
    assert "@-sign" in line
    assert listing(users) == []


@pytest.mark.parametrize("name", ["", "   ", "Tab\there"])
def test_create_refuses_a_name_the_api_would_refuse(users: Courtyard, name: str) -> None:
    assert_refused(users("users", "create", "a@example.com", "--name", name), "name")
    assert listing(users) == []


def test_promote_deactivate_activate_demote_find_the_email_in_any_case(
    users: Courtyard,
) -> None:
    create(users, "root@example.com", "Root", "--admin")
    create(users, "Ann@Example.COM", "Ann")

    def change(verb: str, email: str) -> str:
        return ok(users("users", verb, email))

    def ann() -> tuple[str, str]:
        return role_and_active(listing(users), "Ann@Example.COM")

    assert change("promote", "ANN@EXAMPLE.COM") == "promoted Ann@Example.COM: role admin, active\n"
    assert ann() == ("admin", "yes")

    deactivated = change("deactivate", "ann@example.com")
    assert deactivated == "deactivated Ann@Example.COM: role admin, inactive\n"
    assert ann() == ("admin", "no")

    activated = change("activate", "ann@EXAMPLE.com")
    assert activated == "activated Ann@Example.COM: role admin, active\n"
    assert change("demote", "Ann@example.com") == "demoted Ann@Example.COM: role user, active\n"
    assert ann() == ("user", "yes")


def test_every_change_command_refuses_an_unknown_email(users: Courtyard) -> None:
    create(users, "ann@example.com", "Ann")

    for verb in ("promote", "demote", "deactivate", "activate"):
        line = assert_refused(users("users", verb, "nobody@example.com"))
        assert line == f"{ERROR}No user with email nobody@example.com"


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(users: Courtyard) -> None:
    create(users, "root@example.com", "Root", "--admin")

    for verb in ("demote", "deactivate"):
        assert_refused(users("users", verb, "root@example.com"), "last active admin")

    assert role_and_active(listing(users), "root@example.com") == ("admin", "yes")


def test_an_admin_can_be_demoted_or_deactivated_while_another_active_admin_remains(
    users: Courtyard,
) -> None:
    create(users, "root@example.com", "Root", "--admin")
    create(users, "ada@example.com", "Ada", "--admin")

    ok(users("users", "deactivate", "root@example.com"))
    # An inactive admin does not count: Ada is now the last active one.
    assert_refused(users("users", "demote", "ada@example.com"), "last active admin")
    ok(users("users", "activate", "root@example.com"))
    ok(users("users", "demote", "ada@example.com"))

    rows = listing(users)
    assert role_and_active(rows, "root@example.com") == ("admin", "yes")
    assert role_and_active(rows, "ada@example.com") == ("user", "yes")


def test_without_the_user_plugin_there_is_no_users_command(courtyard: Courtyard) -> None:
    enabled = ok(courtyard("--help"))
    assert "users" in help_commands(enabled)

    # `auth`, `oauth` and `upload` require `user`, so all four go; `mail` needs nothing
    # and stays.
    without = "auth,oauth,upload,user"
    disabled = ok(courtyard("--help", enabled=None, COURTYARD_DISABLED_PLUGINS=without))
    assert "users" not in help_commands(disabled)
    assert {"serve", "plugins", "db"} <= set(help_commands(disabled))

    result = courtyard("users", "list", enabled=None, COURTYARD_DISABLED_PLUGINS=without)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "No such command 'users'" in result.stderr
    assert "Traceback" not in result.stderr

    alone = courtyard("users", "list", enabled=None, COURTYARD_DISABLED_PLUGINS="user")
    assert_one_line_error(alone, "plugin 'auth' requires 'user', which is disabled")


async def soft_delete(database_url: str, user_id: str) -> None:
    """Soft-delete a user through the plugin's service (no CLI command does)."""
    settings = CoreSettings(env="test", database_url=database_url, enabled_plugins="user")
    app = create_app(settings)
    try:
        await app.state.kernel.container_of("user").service().delete(user_id)
    finally:
        await app.state.database.dispose()


async def test_include_deleted_lists_soft_deleted_users_with_the_time_of_deletion(
    users: Courtyard, database_url: str
) -> None:
    ann = await asyncio.to_thread(create, users, "ann@example.com", "Ann")
    bob = await asyncio.to_thread(create, users, "bob@example.com", "Bob")
    before = datetime.now().astimezone()
    await soft_delete(database_url, bob)

    live = await asyncio.to_thread(listing, users)
    every = await asyncio.to_thread(listing, users, "--include-deleted")

    assert [row["id"] for row in live] == [ann]
    assert [row["id"] for row in every] == [bob, ann]
    assert "deleted" not in every[1]
    deleted_at = datetime.fromisoformat(every[0]["deleted"])
    assert deleted_at.tzinfo is not None
    assert abs((deleted_at - before).total_seconds()) < 60
    # A deleted account is gone for the change commands too.
    refused = await asyncio.to_thread(users, "users", "promote", "bob@example.com")
    assert_refused(refused, "No user with email bob@example.com")


async def created_at(database_url: str, user_id: str, when: datetime) -> None:
    """Set when a user was created, stored as the app stores it (the column's own type)."""
    engine = app_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(UserRecord).where(col(UserRecord.id) == user_id).values(created_at=when)
            )
    finally:
        await engine.dispose()


async def test_stats_counts_live_users_as_the_api_does(users: Courtyard, database_url: str) -> None:
    """Stops: the operator's count including deleted accounts, or disagreeing with the
    admin API about what "this month", "this week" and "today" are."""
    old = await asyncio.to_thread(create, users, "old@example.com", "Old")
    gone = await asyncio.to_thread(create, users, "gone@example.com", "Gone")
    await asyncio.to_thread(create, users, "new@example.com", "New", "--admin")
    await created_at(database_url, old, datetime(2000, 1, 1, tzinfo=UTC))
    await soft_delete(database_url, gone)

    out = await asyncio.to_thread(ok, users("users", "stats"))

    assert out.splitlines()[0].split() == ["total", "month", "week", "today"]
    # `new`, made a moment ago, counts everywhere (unless this ran across midnight UTC).
    assert parse_table(out) == [{"total": "2", "month": "1", "week": "1", "today": "1"}]
