"""`courtyard uploads …`, run as a real subprocess on the database and folder of an app built
in the test: the uploads are made through the API, the command purges them from another
process, and the files and rows show what it did."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.plugins.upload.conftest import PDF, PLUGINS, PNG, UploadAppFactory
from tests.plugins.upload.test_lifecycle import expire, key_of, pending, states
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard

Courtyard = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]

LONG_AGO = timedelta(minutes=5)


@pytest.fixture
def courtyard(database_url: str, tmp_path: Path) -> Courtyard:
    """`await courtyard(*args, **env)`: the command in a worker thread (so the app of the test
    keeps serving), on `database_url` and the local folder `upload_app` uses, with the three
    plugins enabled unless `env` says otherwise."""
    base = {
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_UPLOAD__LOCAL_ROOT": str(tmp_path / "uploads"),
    }

    def run(*args: str, **env: str) -> Awaitable[subprocess.CompletedProcess[str]]:
        environ = {key: value for key, value in {**base, **env}.items() if value}
        return asyncio.to_thread(run_courtyard, *args, cwd=tmp_path, env=environ)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result
    assert result.stderr == ""
    return result.stdout.splitlines()


def help_commands(stdout: str) -> list[str]:
    panel = stdout.split("Commands", 1)[1]
    return re.findall(r"^\W*([\w-]+) {2,}\S", panel, flags=re.MULTILINE)


async def test_purge_removes_expired_pending_uploads_and_their_files(
    upload_app: UploadAppFactory, courtyard: Courtyard
) -> None:
    async with upload_app("local") as app:
        alice = await app.user()
        stale = [
            await pending(app, alice, PNG),
            await pending(app, alice, PDF, content_type="application/pdf"),
        ]
        fresh = await pending(app, alice, PNG)
        ready = await app.upload(alice, PNG)
        for upload in stale:
            await expire(app, upload["id"], LONG_AGO)
        kept = sorted([await key_of(app, fresh["id"]), await key_of(app, ready["id"])])
        assert len(app.stored_keys()) == 4

        lines = ok(await courtyard("uploads", "purge"))

        assert lines[0] == "purging"  # the progress bar (only its label without a terminal)
        assert lines[-1] == f"purged 2 expired uploads ({len(PNG) + len(PDF)} bytes)"
        assert app.stored_keys() == kept
        assert await states(app, *(u["id"] for u in stale)) == {
            u["id"]: ("deleted", True) for u in stale
        }
        assert await states(app, fresh["id"], ready["id"]) == {
            fresh["id"]: ("pending", False),
            ready["id"]: ("ready", False),
        }

        again = ok(await courtyard("uploads", "purge"))

        assert again[-1] == "purged 0 expired uploads (0 bytes)"
        assert app.stored_keys() == kept


async def test_purge_counts_one_upload_in_the_singular(
    upload_app: UploadAppFactory, courtyard: Courtyard
) -> None:
    async with upload_app("local") as app:
        stale = await pending(app, await app.user(), PNG)
        await expire(app, stale["id"], LONG_AGO)

        lines = ok(await courtyard("uploads", "purge"))

        assert lines[-1] == f"purged 1 expired upload ({len(PNG)} bytes)"
        assert app.stored_keys() == []


async def test_purge_with_nothing_expired_says_so(
    upload_app: UploadAppFactory, courtyard: Courtyard
) -> None:
    async with upload_app("local") as app:
        fresh = await pending(app, await app.user(), PNG)

        lines = ok(await courtyard("uploads", "purge"))

        assert lines[-1] == "purged 0 expired uploads (0 bytes)"
        assert await states(app, fresh["id"]) == {fresh["id"]: ("pending", False)}
        assert len(app.stored_keys()) == 1


async def test_help_lists_purge(courtyard: Courtyard) -> None:
    results = await asyncio.gather(courtyard("uploads", "--help"), courtyard("--help"))
    uploads_help, top_help = ("\n".join(ok(result)) for result in results)

    assert help_commands(uploads_help) == ["purge"]
    assert "Uploaded files." in uploads_help
    assert "Delete pending uploads that were never completed in time" in uploads_help
    assert "uploads" in help_commands(top_help)


async def test_without_the_plugin_there_is_no_uploads_command(courtyard: Courtyard) -> None:
    result = await courtyard("uploads", "purge", COURTYARD_ENABLED_PLUGINS="user,auth,mail")

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "No such command 'uploads'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_purge_without_the_user_plugin_it_requires_fails_in_one_line(
    courtyard: Courtyard,
) -> None:
    result = await courtyard("uploads", "purge", COURTYARD_ENABLED_PLUGINS="upload")

    assert_one_line_error(result, "plugin 'upload' requires 'user', which is disabled")
