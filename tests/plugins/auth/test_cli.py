"""`courtyard auth …`, run as a real subprocess on the database of an app built in the test.

The accounts and sessions are made through the app's API (sign-up, login), the command
changes the database from another process, and the app then shows what a user would see.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.auth.conftest import (
    NEW_PASSWORD,
    PASSWORD,
    PLUGINS,
    AuthApp,
    AuthAppFactory,
    bearer,
)
from tests.support.courtyard_cli import (
    assert_one_line_error,
    run_courtyard,
)
from tests.support.problems import assert_problem

Courtyard = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]

ERROR = "courtyard: error: "
SET = "password set for {email}; every session of theirs has ended\n"
USERS = "/api/v1/users"


@pytest.fixture
def courtyard(database_url: str, tmp_path: Path) -> Courtyard:
    """`await courtyard(*args, typed=None, stdin=None)`: the command, in a worker thread so
    the app of the test keeps serving, on `database_url` with `user` and `auth` enabled.
    `typed` is what the operator types at its prompts (or `stdin` a file holding it)."""

    env = {"COURTYARD_DATABASE_URL": database_url, "COURTYARD_ENABLED_PLUGINS": PLUGINS}

    def run(*args: str, **stdin: Any) -> Awaitable[subprocess.CompletedProcess[str]]:
        return asyncio.to_thread(run_courtyard, *args, cwd=tmp_path, env=env, **stdin)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result
    assert result.stderr == ""
    return result.stdout


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The `courtyard: error:` lines of a command that prompted first (stderr may also hold
    the prompt machinery's own warnings, e.g. Python's GetPassWarning without a terminal)."""
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith(ERROR)]


async def signed_in(auth: AuthApp, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await auth.login(email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def live_sessions(auth: AuthApp, user_id: str) -> set[str]:
    rows = await auth.rows(
        "SELECT id FROM auth_session WHERE user_id = :user_id AND revoked_at IS NULL",
        user_id=user_id,
    )
    return {row[0] for row in rows}


async def credential(auth: AuthApp, user_id: str) -> tuple[str, datetime]:
    [(password_hash, changed_at)] = await auth.rows(
        "SELECT password_hash, changed_at FROM auth_credential WHERE user_id = :user_id",
        user_id=user_id,
    )
    if isinstance(changed_at, str):  # SQLite: naive UTC text
        changed_at = datetime.fromisoformat(changed_at)
    return password_hash, changed_at if changed_at.tzinfo else changed_at.replace(tzinfo=UTC)


async def assert_refresh_refused(auth: AuthApp, tokens: dict[str, Any]) -> None:
    refreshed = await auth.refresh(tokens["refresh_token"])
    assert_problem(refreshed, 401, "auth.invalid_refresh_token")


async def assert_login_refused(auth: AuthApp, email: str, password: str) -> None:
    assert_problem(await auth.login(email, password), 401, "auth.invalid_credentials")


# -- revoke-sessions -------------------------------------------------------------------------


async def test_revoke_sessions_ends_every_session_of_the_user_found_in_any_case(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: an operator unable to throw an attacker out of a compromised account — every
    live session must end, on every instance, whatever case the email is typed in — while
    nobody else is signed out."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")
        assert (await auth.logout(ann["refresh_token"])).status_code == 204  # already ended
        devices = [await signed_in(auth, "ann@example.com") for _ in range(2)]
        bob = await auth.signup("bob@example.com")

        result = await courtyard("auth", "revoke-sessions", "ANN@Example.COM")

        assert ok(result) == "revoked 2 sessions of ann@example.com\n"
        assert await live_sessions(auth, ann["user"]["id"]) == set()
        for device in devices:
            await assert_refresh_refused(auth, device)
        assert len(await live_sessions(auth, bob["user"]["id"])) == 1
        assert (await auth.refresh(bob["refresh_token"])).status_code == 200

    # Another instance (as every running one does within `revocation_check_interval`)
    # refuses the ended sessions' access tokens too.
    async with auth_app() as instance:
        for device in devices:
            assert_problem(await instance.me(device), 401, "core.unauthorized")
        assert (await instance.me(bob)).status_code == 200


async def test_revoke_sessions_counts_only_sessions_still_live(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: a report that misleads the operator (counting sessions that had already ended),
    and shows the command is safe to run again."""
    async with auth_app() as auth:
        await auth.signup("ann@example.com")
        assert ok(await courtyard("auth", "revoke-sessions", "ann@example.com")) == (
            "revoked 1 session of ann@example.com\n"
        )

        again = await courtyard("auth", "revoke-sessions", "ann@example.com")

        assert ok(again) == "revoked 0 sessions of ann@example.com\n"


async def test_revoke_sessions_of_an_unknown_email_fails_in_one_line(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: a typo in the email passing silently ("done") while the intended account stays
    compromised, or failing with a traceback."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")

        result = await courtyard("auth", "revoke-sessions", "nobody@example.com")

        line = assert_one_line_error(result, "nobody@example.com", status=1)
        assert line == f"{ERROR}No user with email nobody@example.com"
        assert len(await live_sessions(auth, ann["user"]["id"])) == 1


# -- set-password ----------------------------------------------------------------------------


async def test_set_password_typed_at_the_prompt_replaces_it_and_ends_every_session(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: an operator's reset leaving the attacker in (the old password or an open
    session still working), and the new password leaking into the terminal's output or a
    log of it (no echo)."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")
        laptop = await signed_in(auth, "ann@example.com")
        user_id = ann["user"]["id"]
        old_hash, old_changed_at = await credential(auth, user_id)

        result = await courtyard(
            "auth", "set-password", "Ann@Example.com", typed=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"
        )

        assert result.returncode == 0, result
        assert "Traceback" not in result.stderr
        assert "New password" in result.stdout  # it asked
        assert result.stdout.endswith(SET.format(email="ann@example.com"))
        assert NEW_PASSWORD not in result.stdout
        assert NEW_PASSWORD not in result.stderr
        assert await live_sessions(auth, user_id) == set()
        await assert_refresh_refused(auth, ann)
        await assert_refresh_refused(auth, laptop)
        new_hash, new_changed_at = await credential(auth, user_id)
        assert new_hash != old_hash
        assert new_changed_at > old_changed_at
        await assert_login_refused(auth, "ann@example.com", PASSWORD)
        await signed_in(auth, "ann@example.com", NEW_PASSWORD)


async def test_set_password_takes_the_password_option_too(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: scripted resets (no one at a prompt) being impossible, or prompting anyway."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")

        result = await courtyard(
            "auth", "set-password", "ann@example.com", "--password", NEW_PASSWORD
        )

        assert ok(result) == SET.format(email="ann@example.com")
        assert await live_sessions(auth, ann["user"]["id"]) == set()
        await assert_login_refused(auth, "ann@example.com", PASSWORD)
        await signed_in(auth, "ann@example.com", NEW_PASSWORD)


async def test_set_password_gives_an_account_made_without_one_its_first_password(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: accounts an admin created (no credential row) being unable ever to sign in:
    the operator's command must create the credential, not only replace one."""
    async with auth_app() as auth:
        made = await auth.user_service(lambda s: s.create("cara@example.com", "Cara"))
        no_credential = "SELECT user_id FROM auth_credential WHERE user_id = :user_id"
        assert await auth.rows(no_credential, user_id=made.id) == []
        await assert_login_refused(auth, "cara@example.com", NEW_PASSWORD)

        result = await courtyard(
            "auth", "set-password", "cara@example.com", "--password", NEW_PASSWORD
        )

        assert ok(result) == SET.format(email="cara@example.com")
        signed = await signed_in(auth, "cara@example.com", NEW_PASSWORD)
        assert signed["user"]["id"] == made.id


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("short", "String should have at least 8 characters", id="too-short"),
        pytest.param(
            "password1",
            "This password is one of the most common ones; choose another",
            id="common",
        ),
    ],
)
async def test_set_password_refuses_what_the_policy_refuses_in_one_clear_line(
    auth_app: AuthAppFactory, courtyard: Courtyard, password: str, message: str
) -> None:
    """Stops: the operator's tool being a way around the password policy (a weak password an
    attacker guesses at once), failing with a traceback, or changing anything when it
    refuses."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")
        user_id = ann["user"]["id"]
        stored = await credential(auth, user_id)
        expected = f"{ERROR}Invalid input: password: {message}"

        prompted = await courtyard(
            "auth", "set-password", "ann@example.com", typed=f"{password}\n{password}\n"
        )
        given = await courtyard("auth", "set-password", "ann@example.com", "--password", password)

        assert prompted.returncode == 1, prompted
        assert error_lines(prompted) == [expected]
        assert prompted.stderr.splitlines()[-1] == expected
        assert password not in prompted.stdout
        assert password not in prompted.stderr
        assert assert_one_line_error(given, status=1) == expected
        assert await credential(auth, user_id) == stored
        assert len(await live_sessions(auth, user_id)) == 1
        assert (await auth.refresh(ann["refresh_token"])).status_code == 200
        await signed_in(auth, "ann@example.com", PASSWORD)


async def test_set_password_with_a_mismatched_confirmation_changes_nothing(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: a typo at the prompt setting a password nobody knows (locking the user out and
    ending their sessions for nothing)."""
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")
        user_id = ann["user"]["id"]
        stored = await credential(auth, user_id)
        first, second = NEW_PASSWORD, "a different, longer passphrase!"

        result = await courtyard(
            "auth", "set-password", "ann@example.com", typed=f"{first}\n{second}\n"
        )

        assert result.returncode != 0, result
        assert "Traceback" not in result.stderr
        assert "The two entered values do not match" in result.stdout + result.stderr
        assert "password set" not in result.stdout
        for typed in (first, second):
            assert typed not in result.stdout
            assert typed not in result.stderr
        assert await credential(auth, user_id) == stored
        assert len(await live_sessions(auth, user_id)) == 1
        assert (await auth.refresh(ann["refresh_token"])).status_code == 200
        await assert_login_refused(auth, "ann@example.com", first)
        await signed_in(auth, "ann@example.com", PASSWORD)


async def test_set_password_of_an_unknown_email_fails_in_one_line(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: a typo in the email reporting success while no password was set."""
    async with auth_app() as auth:
        await auth.signup("ann@example.com")

        result = await courtyard(
            "auth", "set-password", "nobody@example.com", "--password", NEW_PASSWORD
        )

        line = assert_one_line_error(result, status=1)
        assert line == f"{ERROR}No user with email nobody@example.com"
        await signed_in(auth, "ann@example.com", PASSWORD)


@pytest.mark.parametrize("exists", [False, True], ids=["unknown", "known"])
async def test_set_password_asks_for_the_password_only_once_the_account_is_found(
    auth_app: AuthAppFactory, courtyard: Courtyard, tmp_path: Path, exists: bool
) -> None:
    """Stops: the operator typing the new password twice, only to learn afterwards that the
    email has a typo: the account is looked up first, and nothing is asked or read. (The
    known account's case shows that reading the typed text is seen when it happens.)"""
    email = "ann@example.com" if exists else "nobody@example.com"
    typed = tmp_path / "typed"
    typed.write_text(f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    async with auth_app() as auth:
        await auth.signup("ann@example.com")

        with typed.open("rb") as stdin:
            result = await courtyard("auth", "set-password", email, stdin=stdin)
            read = os.lseek(stdin.fileno(), 0, os.SEEK_CUR)

        if exists:
            assert result.returncode == 0, result
            assert "New password" in result.stdout
            assert result.stdout.endswith(SET.format(email=email))
            assert read > 0
            await assert_login_refused(auth, email, PASSWORD)
            await signed_in(auth, email, NEW_PASSWORD)
        else:
            line = assert_one_line_error(result, status=1)  # and nothing on stdout: no prompt
            assert line == f"{ERROR}No user with email {email}"
            assert "New password" not in result.stdout + result.stderr
            assert read == 0, f"the command read {read} bytes of what was typed"
            await signed_in(auth, "ann@example.com", PASSWORD)


# -- create-admin ----------------------------------------------------------------------------

CREATED = re.compile(r"created admin (\S+) \((usr_\w+)\), email verified; it can sign in\n")


async def assert_signs_in_as_a_verified_admin(auth: AuthApp, email: str, password: str) -> str:
    """Sign in with the credentials, then act as an admin; the account's id."""
    tokens = await signed_in(auth, email, password)
    me = (await auth.me(tokens)).json()
    assert (me["role"], me["email_verified"], me["is_active"]) == ("admin", True, True)
    listed = await auth.client.get(USERS, headers=bearer(tokens))  # admins only
    assert listed.status_code == 200, listed.text
    assert me["id"] in [user["id"] for user in listed.json()["items"]]
    return str(me["id"])


async def accounts_with(auth: AuthApp, email: str) -> list[tuple[Any, ...]]:
    return await auth.rows('SELECT id, role FROM "user" WHERE email_key = :key', key=email.lower())


async def test_create_admin_asks_twice_and_the_admin_signs_in_at_once(
    auth_app: AuthAppFactory, courtyard: Courtyard
) -> None:
    """Stops: the first admin needing two commands (an account, then a password) or an
    email verification before it can sign in, and the password reaching the terminal."""
    async with auth_app(require_verified_email=True) as auth:
        result = await courtyard(
            "auth", "create-admin", "Root@Example.com", "--name", "Root",
            typed=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
        )  # fmt: skip

        assert result.returncode == 0, result
        assert "Traceback" not in result.stderr
        assert result.stdout.count("Password") == 1  # asked…
        assert "Repeat for confirmation" in result.stdout  # …twice
        created = CREATED.search(result.stdout)
        assert created, result.stdout
        assert created.group(1) == "Root@Example.com"  # stored as given
        assert NEW_PASSWORD not in result.stdout + result.stderr
        admin_id = await assert_signs_in_as_a_verified_admin(auth, "root@example.com", NEW_PASSWORD)
        assert admin_id == created.group(2)


async def test_create_admin_reads_the_password_from_stdin_for_scripts(
    auth_app: AuthAppFactory, courtyard: Courtyard, tmp_path: Path
) -> None:
    """Stops: provisioning scripts needing a terminal (or the password on the command line,
    where the shell's history and `ps` show it)."""
    typed = tmp_path / "password"
    typed.write_text(f"{NEW_PASSWORD}\nnot read\n")
    async with auth_app() as auth:
        with typed.open("rb") as stdin:
            result = await courtyard(
                "auth", "create-admin", "ops@example.com", "--name", "Ops", "--password-stdin",
                stdin=stdin,
            )  # fmt: skip

        out = ok(result)
        assert CREATED.fullmatch(out), out  # no prompt
        await assert_signs_in_as_a_verified_admin(auth, "ops@example.com", NEW_PASSWORD)


@pytest.mark.parametrize("password_stdin", [False, True], ids=["prompt", "stdin"])
async def test_create_admin_refuses_an_email_in_use_before_asking_anything(
    auth_app: AuthAppFactory, courtyard: Courtyard, tmp_path: Path, password_stdin: bool
) -> None:
    """Stops: the operator typing a password twice only to learn the address is taken, and
    an existing account (here a plain user) being turned into an admin or given a new
    password."""
    typed = tmp_path / "typed"
    typed.write_text(f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    flags = ["--password-stdin"] if password_stdin else []
    async with auth_app() as auth:
        ann = await auth.signup("ann@example.com")
        stored = await credential(auth, ann["user"]["id"])

        with typed.open("rb") as stdin:
            result = await courtyard(
                "auth", "create-admin", "ANN@example.com", "--name", "Ann", *flags, stdin=stdin
            )
            read = os.lseek(stdin.fileno(), 0, os.SEEK_CUR)

        line = assert_one_line_error(result, status=1)  # nothing on stdout: no prompt
        assert line == f"{ERROR}The email ANN@example.com is already in use"
        assert read == 0, f"the command read {read} bytes of what was typed"
        assert await accounts_with(auth, "ann@example.com") == [(ann["user"]["id"], "user")]
        assert await credential(auth, ann["user"]["id"]) == stored
        await signed_in(auth, "ann@example.com", PASSWORD)


@pytest.mark.parametrize(
    ("email", "name", "message"),
    [
        pytest.param("not-an-address", "Root", "Invalid input: email: ", id="email"),
        pytest.param(
            "root@example.com", "   ", "Invalid input: name: must not be blank", id="name"
        ),
    ],
)
async def test_create_admin_refuses_what_the_user_plugin_refuses_before_asking(
    auth_app: AuthAppFactory, courtyard: Courtyard, email: str, name: str, message: str
) -> None:
    """Stops: a malformed address or name found only after the password was typed."""
    async with auth_app() as auth:
        result = await courtyard(
            "auth", "create-admin", email, "--name", name, typed=f"{NEW_PASSWORD}\n" * 2
        )

        line = assert_one_line_error(result, status=1)
        assert line.startswith(f"{ERROR}{message}"), line
        assert await accounts_with(auth, email) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("short", "String should have at least 8 characters", id="too-short"),
        pytest.param(
            "password1",
            "This password is one of the most common ones; choose another",
            id="common",
        ),
        pytest.param("", "standard input (--password-stdin) holds none", id="empty"),
    ],
)
async def test_create_admin_refuses_a_password_the_policy_refuses_in_one_line(
    auth_app: AuthAppFactory, courtyard: Courtyard, password: str, message: str
) -> None:
    """Stops: the first admin, the most valuable account, getting a password an attacker
    guesses at once (the operator's tool must not be a way around the sign-up rules), and
    a refusal that leaves an admin without a password behind."""
    async with auth_app() as auth:
        result = await courtyard(
            "auth", "create-admin", "root@example.com", "--name", "Root", "--password-stdin",
            typed=f"{password}\n",
        )  # fmt: skip

        line = assert_one_line_error(result, status=1)
        assert line == f"{ERROR}Invalid input: password: {message}"
        assert await accounts_with(auth, "root@example.com") == []
        await assert_login_refused(auth, "root@example.com", password or NEW_PASSWORD)


def help_commands(stdout: str) -> list[str]:
    """The command names in the "Commands" panel of a `--help`."""
    panel = stdout.split("Commands", 1)[1]
    return re.findall(r"^\W*([\w-]+) {2,}\S", panel, flags=re.MULTILINE)


def test_help_lists_every_command(tmp_path: Path) -> None:
    """Stops: the operator's tools being unreachable (not registered with `courtyard`).
    (Help reads no database: one backend is enough.)"""
    env = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
    }
    auth_help = ok(run_courtyard("auth", "--help", cwd=tmp_path, env=env))
    top_help = ok(run_courtyard("--help", cwd=tmp_path, env=env))

    assert help_commands(auth_help) == ["create-admin", "revoke-sessions", "set-password"]
    assert "The first admin, passwords and sessions." in auth_help
    assert "auth" in help_commands(top_help)
