"""Several app instances purging one database at once: each expired upload is purged by
exactly one of them (its object deleted once, its record changed once, counted once), and
a purge that stops part-way leaves nothing it cannot finish later.

The apps are built on the same database and the same storage (a folder, or a bucket of
moto's S3 server) and purge at the same time. Deletions are watched where they happen: on
the local backend every file removal the test process makes (Python's `os.remove` audit
event, raised for each attempt, whether or not the file is there), on S3 the DeleteObjects
requests moto's server received (its request recorder)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from sqlalchemy import bindparam, text

from core.db import UTCDateTime, utcnow
from plugins.upload.schemas import PurgeResult
from plugins.upload.service import UploadService
from plugins.upload.storage import StorageUnavailable
from tests.plugins.upload.conftest import PNG, S3Server, UploadApp, UploadAppFactory
from tests.plugins.upload.test_lifecycle import LONG_AGO, pending, states
from tests.support.databases import backends

MANY = 200  # two batches of the purge's 100, so two instances can each take one
SETUP_CONCURRENCY = 10  # uploads made at once while setting up


def service_of(app: UploadApp) -> UploadService:
    service: UploadService = app.container.service()
    return service


async def expired_uploads(app: UploadApp, count: int) -> dict[str, str]:
    """`count` pending uploads of one user, their bytes sent, whose time to complete ran
    out long ago: {upload id: object key}."""
    alice = await app.user()
    made: list[dict[str, Any]] = []
    for start in range(0, count, SETUP_CONCURRENCY):
        step = min(SETUP_CONCURRENCY, count - start)
        made += await asyncio.gather(*(pending(app, alice) for _ in range(step)))
    statement = text(
        "UPDATE upload_file SET expires_at = :t WHERE status = 'pending' AND owner_id = :owner"
    ).bindparams(bindparam("t", type_=UTCDateTime))
    async with app.app.state.database.write_engine.begin() as connection:
        await connection.execute(
            statement, {"t": utcnow() - LONG_AGO, "owner": made[0]["owner_id"]}
        )
    ids = [upload["id"] for upload in made]
    rows = await app.rows("SELECT id, key FROM upload_file")
    return {upload_id: key for upload_id, key in rows if upload_id in ids}


# -- watching deletions ------------------------------------------------------------------------

_watchers: list[list[str]] = []  # one list per `files_removed` block running
_hooked = False


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "os.remove" and _watchers:
        for removed in _watchers:
            removed.append(os.fsdecode(args[0]))


@contextmanager
def files_removed(root: Path) -> Iterator[list[str]]:
    """The keys (paths under `root`) of every file this process tries to remove inside the
    block, once per attempt. An audit hook cannot be removed: it stays, idle, afterwards."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_on_audit)
        _hooked = True
    attempts: list[str] = []
    keys: list[str] = []  # filled in as the block ends
    _watchers.append(attempts)
    try:
        yield keys
    finally:
        _watchers.remove(attempts)
        base = root.resolve()
        keys += [str(Path(p).relative_to(base)) for p in attempts if Path(p).is_relative_to(base)]


async def recording(server: S3Server, action: str) -> str:
    """Drive moto's request recorder: `reset`, `start`, `stop` or `download` (its log)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.endpoint}/moto-api/recorder/{action}-recording")
        response.raise_for_status()
        return response.text


def recorded_entries(log: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of moto's recorder log, one after another. Not line by line: the
    recorder writes an entry and its newline separately, so two requests recorded at once
    can leave two entries on one line."""
    decoder = json.JSONDecoder()
    text = log.strip()
    position = 0
    while position < len(text):
        entry, position = decoder.raw_decode(text, position)
        yield entry
        while position < len(text) and text[position].isspace():
            position += 1


def keys_deleted_from(log: str, bucket: str) -> list[str]:
    """Every key named by a DeleteObjects request to `bucket` in moto's recorder log (a
    key deleted twice is listed twice)."""
    keys: list[str] = []
    for entry in recorded_entries(log):
        url = urlsplit(entry["url"])
        if entry["method"] != "POST" or url.path.strip("/") != bucket or "delete" not in url.query:
            continue
        body = entry["body"]
        xml = base64.b64decode(body) if entry["body_encoded"] else body.encode()
        # The XML is the app's own request, as moto's server recorded it.
        document = ElementTree.fromstring(xml)  # noqa: S314
        keys += [node.text or "" for node in document.iter() if node.tag.endswith("Key")]
    return keys


# -- two instances at once ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_two_instances_purging_at_once_purge_each_upload_exactly_once(
    upload_app: UploadAppFactory, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Meaningful on SQLite too: two processes (or workers) may share one database file."""
    async with upload_app(backend) as first:
        # The same database; the same folder (the fixture's default) or bucket.
        shared = {"s3_bucket": first.bucket} if backend == "s3" else {}
        async with upload_app(backend, **shared) as second:
            uploads = await expired_uploads(first, MANY)
            assert first.stored_keys() == second.stored_keys() == sorted(uploads.values())
            # Two runs per instance (its periodic purge and `courtyard uploads purge`, say).
            purges = [service_of(app).purge for app in (first, second, first, second)]
            caplog.clear()

            if first.s3 is not None:
                assert first.bucket is not None
                await recording(first.s3, "reset")
                await recording(first.s3, "start")
                try:
                    results = await asyncio.gather(*(purge() for purge in purges))
                finally:
                    await recording(first.s3, "stop")
                deleted = keys_deleted_from(await recording(first.s3, "download"), first.bucket)
            else:
                assert first.root is not None
                with files_removed(first.root) as deleted:
                    results = await asyncio.gather(*(purge() for purge in purges))

            assert Counter(deleted) == Counter(uploads.values())  # each object deleted once
            # Every purge finished without an error, and together they counted each once.
            assert sum(r.uploads for r in results) == MANY, results
            assert sum(r.bytes for r in results) == MANY * len(PNG), results
            assert first.stored_keys() == []
            assert await states(first, *uploads) == {i: ("deleted", True) for i in uploads}
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
            assert await service_of(second).purge() == PurgeResult(uploads=0, bytes=0)


# -- a purge that stops part-way ---------------------------------------------------------------


async def test_a_purge_stopped_part_way_leaves_every_upload_for_the_next_one(
    upload_app: UploadAppFactory,
) -> None:
    """Objects are deleted while the records are held, and the records change only after:
    a purge whose storage fails changes no record, and one that stopped after deleting
    objects but before its commit (a crash) leaves records the next purge finishes."""
    async with upload_app("s3") as app:
        uploads = await expired_uploads(app, 3)
        keys = sorted(uploads.values())
        async with upload_app(
            "s3", s3_bucket=app.bucket, s3_endpoint_url="http://127.0.0.1:9"
        ) as cut_off:
            with pytest.raises(StorageUnavailable):
                await service_of(cut_off).purge()

        assert await states(app, *uploads) == {i: ("pending", False) for i in uploads}
        assert app.stored_keys() == keys
        # What a crash between the deletion and the commit leaves: records, no objects.
        assert app.s3 is not None
        app.s3.client().delete_object(Bucket=app.bucket, Key=keys[0])

        assert await service_of(app).purge() == PurgeResult(uploads=3, bytes=3 * len(PNG))

        assert await states(app, *uploads) == {i: ("deleted", True) for i in uploads}
        assert app.stored_keys() == []


# -- PostgreSQL: a purge does not wait for another ---------------------------------------------

if "postgresql" in backends():

    @pytest.mark.postgres
    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    async def test_a_purge_leaves_uploads_another_instance_holds_and_does_not_wait(
        upload_app: UploadAppFactory,
    ) -> None:
        """Another instance in the middle of a batch holds its rows locked until it
        commits; it stands here as a transaction that locks 10 of 30 expired uploads."""
        async with upload_app("local") as app:
            uploads = await expired_uploads(app, 30)
            held = sorted(uploads)[:10]
            hold = text("SELECT id FROM upload_file WHERE id IN :ids FOR UPDATE").bindparams(
                bindparam("ids", expanding=True)
            )
            async with app.app.state.database.write_engine.connect() as other_instance:
                await other_instance.execute(hold, {"ids": held})
                try:
                    result = await asyncio.wait_for(service_of(app).purge(), timeout=10)
                except TimeoutError:
                    pytest.fail("the purge waited for the rows another instance holds")

                assert result == PurgeResult(uploads=20, bytes=20 * len(PNG))
                assert app.stored_keys() == sorted(uploads[i] for i in held)
                assert await states(app, *held) == {i: ("pending", False) for i in held}
                await other_instance.rollback()  # it stopped without purging them

            assert await service_of(app).purge() == PurgeResult(uploads=10, bytes=10 * len(PNG))
            assert app.stored_keys() == []
            assert await states(app, *uploads) == {i: ("deleted", True) for i in uploads}
