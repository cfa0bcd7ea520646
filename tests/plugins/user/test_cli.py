"""`courtyard users …`, run as a real subprocess against a migrated database on each backend.

What a test is about goes through the command line; what is only set-up (migrating, the
accounts a command then lists or changes) is done in this process, by the suite's migrator
and the `user` plugin's own service, as `courtyard` itself builds it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from core.kernel import Kernel
from core.settings import CoreSettings
from plugins.user.models import UserRecord
from plugins.user.service import UserService
from tests.support.courtyard_cli import assert_one_line_error, parse_table, rows_by, run_courtyard
from tests.support.databases import MigratedCopies, app_engine

Courtyard = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]

HEADERS = ["id", "email", "name", "role", "active", "verified", "deleted"]
ERROR = "courtyard: error: "


def cli(
    folder: Path, database_url: str, *args: str, enabled: str | None = "user", **env: str
) -> subprocess.CompletedProcess[str]:
    """`courtyard ARGS` in `folder`, on `database_url`, with the `user` plugin alone enabled;
    `enabled=None` leaves COURTYARD_ENABLED_PLUGINS to the suite (every built-in plugin,
    `tests.support.plugin_selection`)."""
    environ = {"COURTYARD_DATABASE_URL": database_url}
    if enabled is not None:
        environ["COURTYARD_ENABLED_PLUGINS"] = enabled
    return run_courtyard(*args, cwd=folder, env={**environ, **env})


def user_settings(database_url: str) -> CoreSettings:
    return CoreSettings(env="test", database_url=database_url, enabled_plugins="user")


@pytest.fixture
async def users(database_url: str, migrated_copies: MigratedCopies, tmp_path: Path) -> Courtyard:
    """`await users(*args)`: `courtyard ARGS` (in a worker thread) on `database_url`, migrated
    for the `user` plugin in this process (`courtyard db upgrade` has tests of its own in
    tests/core/test_cli.py)."""
    await migrated_copies.migrate(user_settings(database_url))

    def run(*args: str) -> Awaitable[subprocess.CompletedProcess[str]]:
        return asyncio.to_thread(cli, tmp_path, database_url, *args)

    return run


@pytest.fixture
async def service(users: Courtyard, database_url: str) -> AsyncIterator[UserService]:
    """The `user` plugin's service on the migrated database, from a kernel built in this
    process as `courtyard` builds its own: it makes the accounts that are only set-up, as
    `courtyard users create` would (`create(email, name, role)`)."""
    kernel = Kernel.build(user_settings(database_url))
    try:
        yield kernel.container_of("user").service()
    finally:
        await kernel.container.database().dispose()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result
    assert result.stderr == ""
    return result.stdout


async def listing(users: Courtyard, *options: str) -> list[dict[str, str]]:
    """The rows of `courtyard users list OPTIONS`, after checking its headers."""
    stdout = ok(await users("users", "list", *options))
    assert stdout.splitlines()[0].split() == HEADERS
    return parse_table(stdout)


def emails(rows: list[dict[str, str]]) -> list[str]:
    return [row["email"] for row in rows]


def role_and_active(rows: list[dict[str, str]], email: str) -> tuple[str, str]:
    row = rows_by(rows, "email")[email]
    return row["role"], row["active"]


async def create(users: Courtyard, email: str, name: str, *flags: str) -> str:
    """Create an account through the CLI; its id, read from the confirmation line."""
    line = ok(await users("users", "create", email, "--name", name, *flags))
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


async def test_created_users_are_listed_newest_first_with_the_email_as_given(
    users: Courtyard,
) -> None:
    ann = await create(users, "Ann@Example.COM", "Ann Smith")
    bob = await create(users, "bob@example.com", "Bob Jones", "--admin")

    rows = await listing(users)

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


async def test_list_filters_by_email_prefix_or_name_substring_and_by_role(
    users: Courtyard, service: UserService
) -> None:
    await service.create("Ann@Example.COM", "Ann Smith")
    await service.create("bob@example.com", "Bob Annan", "admin")
    await service.create("dave@annex.org", "Dave")  # "ann" inside the email, not at its start

    assert emails(await listing(users, "--q", "aNN")) == ["bob@example.com", "Ann@Example.COM"]
    assert emails(await listing(users, "--q", "SMITH")) == ["Ann@Example.COM"]
    assert emails(await listing(users, "--q", "%")) == []  # a literal character, not a wildcard
    assert emails(await listing(users, "--role", "admin")) == ["bob@example.com"]
    assert emails(await listing(users, "--q", "ann", "--role", "user")) == ["Ann@Example.COM"]


def test_list_refuses_an_unknown_role_without_a_traceback(tmp_path: Path) -> None:
    """Refused before the database is read (an unmigrated one would say so instead), so
    on one backend."""
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    result = cli(tmp_path, sqlite, "users", "list", "--role", "x")

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "Invalid value for --role: use 'user' or 'admin'" in result.stderr


async def test_create_refuses_an_email_already_used_in_another_case(
    users: Courtyard, service: UserService
) -> None:
    ann = await service.create("Ann@Example.COM", "Ann")

    line = assert_refused(await users("users", "create", "ann@example.com", "--name", "Other"))

    assert line == f"{ERROR}The email ann@example.com is already in use"
    assert [(row["id"], row["name"]) for row in await listing(users)] == [(ann.id, "Ann")]


async def test_create_refuses_a_malformed_email_in_one_line_saying_why(users: Courtyard) -> None:
    line = assert_refused(await users("users", "create", "not-an-email", "--name", "Nobody"))
    assert line.startswith(f"{ERROR}Invalid input: email: not a valid email address")
    assert "@-sign" in line
    assert await listing(users) == []


async def test_create_refuses_a_name_the_api_would_refuse(users: Courtyard) -> None:
    for name in ["", "   ", "Tab\there"]:
        refused = await users("users", "create", "a@example.com", "--name", name)
        assert_refused(refused, "name")  # not "already in use": none was created before
    assert await listing(users) == []  # one listing shows that no refusal created the account


async def test_promote_deactivate_activate_demote_find_the_email_in_any_case(
    users: Courtyard, service: UserService
) -> None:
    await service.create("root@example.com", "Root", "admin")
    await service.create("Ann@Example.COM", "Ann")

    async def change(verb: str, email: str) -> str:
        return ok(await users("users", verb, email))

    async def ann() -> tuple[str, str]:
        return role_and_active(await listing(users), "Ann@Example.COM")

    promoted = await change("promote", "ANN@EXAMPLE.COM")
    assert promoted == "promoted Ann@Example.COM: role admin, active\n"
    assert await ann() == ("admin", "yes")

    deactivated = await change("deactivate", "ann@example.com")
    assert deactivated == "deactivated Ann@Example.COM: role admin, inactive\n"
    assert await ann() == ("admin", "no")

    activated = await change("activate", "ann@EXAMPLE.com")
    assert activated == "activated Ann@Example.COM: role admin, active\n"
    demoted = await change("demote", "Ann@example.com")
    assert demoted == "demoted Ann@Example.COM: role user, active\n"
    assert await ann() == ("user", "yes")


async def test_every_change_command_refuses_an_unknown_email(
    users: Courtyard, service: UserService
) -> None:
    await service.create("ann@example.com", "Ann")

    for verb in ("promote", "demote", "deactivate", "activate"):
        line = assert_refused(await users("users", verb, "nobody@example.com"))
        assert line == f"{ERROR}No user with email nobody@example.com"


async def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(
    users: Courtyard, service: UserService
) -> None:
    await service.create("root@example.com", "Root", "admin")

    for verb in ("demote", "deactivate"):
        assert_refused(await users("users", verb, "root@example.com"), "last active admin")

    assert role_and_active(await listing(users), "root@example.com") == ("admin", "yes")


async def test_an_admin_can_be_demoted_or_deactivated_while_another_active_admin_remains(
    users: Courtyard, service: UserService
) -> None:
    await service.create("root@example.com", "Root", "admin")
    await service.create("ada@example.com", "Ada", "admin")

    ok(await users("users", "deactivate", "root@example.com"))
    # An inactive admin does not count: Ada is now the last active one.
    assert_refused(await users("users", "demote", "ada@example.com"), "last active admin")
    ok(await users("users", "activate", "root@example.com"))
    ok(await users("users", "demote", "ada@example.com"))

    rows = await listing(users)
    assert role_and_active(rows, "root@example.com") == ("admin", "yes")
    assert role_and_active(rows, "ada@example.com") == ("user", "yes")


def test_without_the_user_plugin_there_is_no_users_command(tmp_path: Path) -> None:
    """Decided when the commands are assembled, before any database is read: one backend."""
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    enabled = ok(cli(tmp_path, sqlite, "--help"))
    assert "users" in help_commands(enabled)

    # `auth`, `oauth` and `upload` require `user`, so all four go; `mail` needs nothing
    # and stays.
    without = "auth,oauth,upload,user"
    disabled = ok(cli(tmp_path, sqlite, "--help", enabled=None, COURTYARD_DISABLED_PLUGINS=without))
    assert "users" not in help_commands(disabled)
    assert {"serve", "plugins", "db"} <= set(help_commands(disabled))

    result = cli(
        tmp_path, sqlite, "users", "list", enabled=None, COURTYARD_DISABLED_PLUGINS=without
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "No such command 'users'" in result.stderr
    assert "Traceback" not in result.stderr

    alone = cli(tmp_path, sqlite, "users", "list", enabled=None, COURTYARD_DISABLED_PLUGINS="user")
    assert_one_line_error(alone, "plugin 'auth' requires 'user', which is disabled")


async def test_include_deleted_lists_soft_deleted_users_with_the_time_of_deletion(
    users: Courtyard, service: UserService
) -> None:
    ann = await service.create("ann@example.com", "Ann")
    bob = await service.create("bob@example.com", "Bob")
    before = datetime.now().astimezone()
    await service.delete(bob.id)  # no command does

    live = await listing(users)
    every = await listing(users, "--include-deleted")

    assert [row["id"] for row in live] == [ann.id]
    assert [row["id"] for row in every] == [bob.id, ann.id]
    assert "deleted" not in every[1]
    deleted_at = datetime.fromisoformat(every[0]["deleted"])
    assert deleted_at.tzinfo is not None
    assert abs((deleted_at - before).total_seconds()) < 60
    # A deleted account is gone for the change commands too.
    refused = await users("users", "promote", "bob@example.com")
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


async def test_stats_counts_live_users_as_the_api_does(
    users: Courtyard, service: UserService, database_url: str
) -> None:
    """Stops: the operator's count including deleted accounts, or disagreeing with the
    admin API about what "this month", "this week" and "today" are."""
    old = await service.create("old@example.com", "Old")
    gone = await service.create("gone@example.com", "Gone")
    await service.create("new@example.com", "New", "admin")
    await created_at(database_url, old.id, datetime(2000, 1, 1, tzinfo=UTC))
    await service.delete(gone.id)

    out = ok(await users("users", "stats"))

    assert out.splitlines()[0].split() == ["total", "month", "week", "today"]
    # `new`, made a moment ago, counts everywhere (unless this ran across midnight UTC).
    assert parse_table(out) == [{"total": "2", "month": "1", "week": "1", "today": "1"}]
