"""What happens to uploads over time and around them: a user deleting their account, the
purge of pending uploads never completed, readiness of the storage, storage that cannot be
reached, and switching the plugin off. Storage is checked for real, on both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text

from core.db import UTCDateTime, utcnow
from plugins.upload.schemas import PurgeResult
from tests.conftest import AppFactory
from tests.plugins.upload.conftest import PDF, PLUGINS, PNG, UPLOADS, UploadApp, UploadAppFactory
from tests.support.problems import assert_problem

STORAGE_CHECK = "upload.storage"  # the plugin's check, named by the core "<plugin>.<check>"
LONG_AGO = timedelta(minutes=2)  # past the purge's one-minute grace
WITHIN_GRACE = timedelta(seconds=20)  # expired, but not long enough to be purged


async def pending(
    app: UploadApp,
    headers: dict[str, str],
    content: bytes = PNG,
    *,
    send: bool = True,
    **grant: Any,
) -> dict[str, Any]:
    """A pending upload (its bytes sent unless `send` is False); the upload as granted."""
    granted = await app.grant(headers, size=len(content), **grant)
    assert granted.status_code == 201, granted.text
    if send:
        sent = await app.send(granted.json(), content)
        assert sent.status_code in (200, 201, 204), sent.text
    upload: dict[str, Any] = granted.json()["upload"]
    return upload


async def expire(app: UploadApp, upload_id: str, ago: timedelta) -> None:
    """Make a pending upload's time to complete run out `ago`."""
    statement = text("UPDATE upload_file SET expires_at = :t WHERE id = :id").bindparams(
        bindparam("t", type_=UTCDateTime)
    )
    async with app.app.state.database.write_engine.begin() as connection:
        await connection.execute(statement, {"t": utcnow() - ago, "id": upload_id})


async def states(app: UploadApp, *upload_ids: str) -> dict[str, tuple[str, bool]]:
    """{id: (status, whether deleted_at is set)}."""
    rows = await app.rows("SELECT id, status, deleted_at FROM upload_file")
    return {i: (status, deleted is not None) for i, status, deleted in rows if i in upload_ids}


async def key_of(app: UploadApp, upload_id: str) -> str:
    [(key,)] = await app.rows("SELECT key FROM upload_file WHERE id = :id", id=upload_id)
    return str(key)


async def readiness(app: UploadApp) -> tuple[int, dict[str, Any]]:
    response = await app.client.get("/health/ready")
    body: dict[str, Any] = response.json()
    return response.status_code, body


# -- a user deleting their account --------------------------------------------------------


async def test_deleting_an_account_deletes_its_uploads_and_files_but_no_one_elses(
    uploads: UploadApp,
) -> None:
    alice, bob = await uploads.user(), await uploads.user()
    photo = await uploads.upload(alice, PNG)
    paper = await uploads.upload(alice, PDF, filename="paper.pdf", content_type="application/pdf")
    sent = await pending(uploads, alice)
    unsent = await pending(uploads, alice, send=False)
    kept = await uploads.upload(bob, PNG)
    alices = [photo["id"], paper["id"], sent["id"], unsent["id"]]
    kept_key = await key_of(uploads, kept["id"])
    assert len(uploads.stored_keys()) == 4

    response = await uploads.client.delete("/api/v1/users/me", headers=alice)

    assert response.status_code == 204, response.text
    assert await states(uploads, *alices) == {i: ("deleted", True) for i in alices}
    assert uploads.stored_keys() == [kept_key]
    assert await states(uploads, kept["id"]) == {kept["id"]: ("ready", False)}
    shown = await uploads.client.get(f"{UPLOADS}/{kept['id']}", headers=bob)
    assert shown.status_code == 200, shown.text
    assert (await uploads.download(shown.json()["download_url"])).content == PNG


# -- purging pending uploads that were never completed -------------------------------------


async def test_purge_removes_only_uploads_expired_past_the_grace_and_their_files(
    uploads: UploadApp,
) -> None:
    alice = await uploads.user()
    stale = await pending(uploads, alice, PNG)
    stale_unsent = await pending(uploads, alice, PDF, send=False, content_type="application/pdf")
    just_expired = await pending(uploads, alice, PNG)
    fresh = await pending(uploads, alice, PNG)
    ready = await uploads.upload(alice, PNG)
    await expire(uploads, stale["id"], LONG_AGO)
    await expire(uploads, stale_unsent["id"], LONG_AGO)
    await expire(uploads, just_expired["id"], WITHIN_GRACE)
    survivors = [just_expired["id"], fresh["id"], ready["id"]]
    surviving_keys = sorted([await key_of(uploads, i) for i in survivors])

    result = await uploads.container.service().purge()

    assert result == PurgeResult(uploads=2, bytes=len(PNG) + len(PDF))
    assert await states(uploads, stale["id"], stale_unsent["id"]) == {
        stale["id"]: ("deleted", True),
        stale_unsent["id"]: ("deleted", True),
    }
    assert await states(uploads, *survivors) == {
        just_expired["id"]: ("pending", False),
        fresh["id"]: ("pending", False),
        ready["id"]: ("ready", False),
    }
    assert uploads.stored_keys() == surviving_keys
    gone = await uploads.client.get(f"{UPLOADS}/{stale['id']}", headers=alice)
    assert_problem(gone, 404, "upload.not_found")
    completed = await uploads.client.post(f"{UPLOADS}/{fresh['id']}/complete", headers=alice)
    assert completed.status_code == 200, completed.text


async def test_purging_again_changes_nothing(uploads: UploadApp) -> None:
    alice = await uploads.user()
    stale = await pending(uploads, alice)
    await expire(uploads, stale["id"], LONG_AGO)
    service = uploads.container.service()
    assert await service.purge() == PurgeResult(uploads=1, bytes=len(PNG))
    before = await uploads.rows("SELECT id, status, deleted_at, updated_at FROM upload_file")

    assert await service.purge() == PurgeResult(uploads=0, bytes=0)

    assert (
        await uploads.rows("SELECT id, status, deleted_at, updated_at FROM upload_file") == before
    )
    assert uploads.stored_keys() == []


async def test_the_app_purges_by_itself_every_purge_interval_and_stops_on_shutdown(
    upload_app: UploadAppFactory,
) -> None:
    """A real run at the smallest interval allowed (10 s): the one slow test here."""
    async with upload_app("local", purge_interval=10) as app:
        started = asyncio.get_running_loop().time()
        alice = await app.user()
        stale = await pending(app, alice)
        await expire(app, stale["id"], LONG_AGO)
        assert app.stored_keys() != []
        while await states(app, stale["id"]) != {stale["id"]: ("deleted", True)}:
            assert asyncio.get_running_loop().time() - started < 15, "no purge within 15 s"
            await asyncio.sleep(0.2)
        assert app.stored_keys() == []
        assert [t for t in asyncio.all_tasks() if t.get_name() == "courtyard.upload.purge"]

    assert not [t for t in asyncio.all_tasks() if t.get_name() == "courtyard.upload.purge"]


async def test_without_a_purge_interval_the_app_runs_no_purge(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("local"):
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "courtyard.upload.purge"]


# -- readiness, and storage that cannot be used ---------------------------------------------


async def test_ready_reports_the_upload_storage_as_passing(uploads: UploadApp) -> None:
    status, body = await readiness(uploads)

    assert status == 200, body
    assert body["checks"][STORAGE_CHECK] == "ok"


@pytest.fixture
def unusable_root(tmp_path: Path) -> Path:
    """A local root that cannot be created: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "uploads"


async def test_a_local_folder_that_cannot_be_created_makes_the_app_not_ready(
    upload_app: UploadAppFactory, unusable_root: Path
) -> None:
    async with upload_app("local", local_root=unusable_root) as app:
        response = await app.client.get("/health/ready")

        body = assert_problem(response, 503, "core.not_ready")
        assert STORAGE_CHECK in body["detail"]
        assert body["checks"][STORAGE_CHECK].startswith("failed: the upload folder is not writable")
        assert body["checks"]["database"] == "ok"
        assert response.headers["retry-after"]


async def test_sending_to_an_unusable_local_folder_answers_503_not_500(
    upload_app: UploadAppFactory, unusable_root: Path
) -> None:
    async with upload_app("local", local_root=unusable_root) as app:
        granted = await app.grant(await app.user())
        assert granted.status_code == 201, granted.text

        sent = await app.send(granted.json(), PNG)

        assert_problem(sent, 503, "upload.storage_unavailable")
        assert sent.headers["retry-after"].isdigit()


async def test_completing_on_an_unusable_local_folder_answers_503_not_500(
    upload_app: UploadAppFactory, unusable_root: Path
) -> None:
    async with upload_app("local", local_root=unusable_root) as app:
        alice = await app.user()
        upload = await pending(app, alice, send=False)

        completed = await app.client.post(f"{UPLOADS}/{upload['id']}/complete", headers=alice)

        assert_problem(completed, 503, "upload.storage_unavailable")
        assert completed.headers["retry-after"].isdigit()
        assert await states(app, upload["id"]) == {upload["id"]: ("pending", False)}


async def test_a_missing_bucket_makes_the_app_not_ready(upload_app: UploadAppFactory) -> None:
    async with upload_app("s3", s3_bucket="missing-bucket-xyz") as app:
        body = assert_problem(await app.client.get("/health/ready"), 503, "core.not_ready")

        assert STORAGE_CHECK in body["detail"]
        assert body["checks"][STORAGE_CHECK] == "failed: bucket 'missing-bucket-xyz' does not exist"


async def test_an_unreachable_s3_service_answers_503_to_retry_never_500(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3", s3_endpoint_url="http://127.0.0.1:9") as app:
        body = assert_problem(await app.client.get("/health/ready"), 503, "core.not_ready")
        assert body["checks"][STORAGE_CHECK].startswith("failed: the S3 service cannot be reached")
        alice = await app.user()
        # A presigned grant is computed locally: it needs no round trip.
        granted = await app.grant(alice)
        assert granted.status_code == 201, granted.text
        upload_id = granted.json()["upload"]["id"]

        completed = await app.client.post(f"{UPLOADS}/{upload_id}/complete", headers=alice)
        deleted = await app.client.delete(f"{UPLOADS}/{upload_id}", headers=alice)

        for response in (completed, deleted):
            assert_problem(response, 503, "upload.storage_unavailable")
            assert response.headers["retry-after"].isdigit()
        # The delete failed before touching the record: it can simply be repeated.
        assert await states(app, upload_id) == {upload_id: ("pending", False)}


# -- switching the plugin off --------------------------------------------------------------


async def test_disabling_the_plugin_removes_its_routes_and_keeps_its_table(
    app_client: AppFactory, tmp_path: Path
) -> None:
    root = tmp_path / "uploads"
    async with app_client(
        enabled_plugins=PLUGINS, plugin_settings={"upload": {"local_root": root}}
    ) as client:
        enabled = UploadApp(client, "local", root=root)
        alice = await enabled.user()
        ready = await enabled.upload(alice)
        waiting = await pending(enabled, alice)
        before = await enabled.rows("SELECT * FROM upload_file ORDER BY id")
        files = enabled.stored_keys()

    async with app_client(enabled_plugins="user,auth,mail") as client:
        app = UploadApp(client, "local", root=root)
        assert "upload" not in client.app.state.kernel.plugin_names  # type: ignore[attr-defined]
        for method, path in [
            ("POST", UPLOADS), ("GET", UPLOADS), ("GET", f"{UPLOADS}/{ready['id']}"),
            ("POST", f"{UPLOADS}/{waiting['id']}/complete"),
            ("DELETE", f"{UPLOADS}/{ready['id']}"),
            ("PUT", f"{UPLOADS}/{waiting['id']}/content"),
            ("GET", f"{UPLOADS}/{ready['id']}/content"),
        ]:  # fmt: skip
            response = await client.request(method, path, headers=alice)
            assert_problem(response, 404, "core.not_found")
        document = (await client.get("/openapi.json")).json()
        assert not [p for p in document["paths"] if p.startswith(UPLOADS)]
        assert "uploads" not in {tag["name"] for tag in document.get("tags", [])}

        deleted = await client.delete("/api/v1/users/me", headers=alice)

        assert deleted.status_code == 204, deleted.text
        assert await app.rows("SELECT * FROM upload_file ORDER BY id") == before
        assert app.stored_keys() == files
