"""The upload flow as a client lives it, over HTTP on both storage backends: grant, send,
complete, read, download and delete; refused sizes, types and signatures; quotas; input
validation; client filenames.

S3 uploads that break the presigned POST policy (wrong size, type or key) are covered in
`test_s3_policy.py`: moto does not evaluate the policy, so they behave differently there.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pytest

from tests.plugins.upload.conftest import (
    HTML,
    PDF,
    PNG,
    SENT,
    UPLOADS,
    UploadApp,
    UploadAppFactory,
    complete,
    granted,
    key_of,
)
from tests.support.problems import assert_problem


def with_query(url: str, **params: str) -> str:
    """`url` with these query parameters replaced."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode(dict(parse_qsl(parts.query)) | params)))


def near(moment: str, expected: datetime, slack: float = 10) -> bool:
    return abs((datetime.fromisoformat(moment) - expected).total_seconds()) < slack


async def test_upload_end_to_end(uploads: UploadApp) -> None:
    alice = await uploads.user()
    grant = await granted(uploads, alice, filename="holiday.png")
    upload, now = grant["upload"], datetime.now(UTC)
    key = key_of(upload)
    assert set(grant) == {"upload", "url", "method", "fields", "headers", "expires_at"}
    shape = (upload["status"], upload["filename"], upload["content_type"], upload["size"])
    assert shape == ("pending", "holiday.png", "image/png", len(PNG))
    assert near(grant["expires_at"], now + timedelta(seconds=900))
    assert near(upload["expires_at"], now + timedelta(hours=24))
    if uploads.backend == "local":
        assert grant["method"] == "PUT"
        assert grant["url"].startswith(f"http://testserver{UPLOADS}/{upload['id']}/content?")
        assert (grant["headers"], grant["fields"]) == ({"Content-Type": "image/png"}, {})
    else:
        assert grant["method"] == "POST"
        assert grant["fields"]["key"] == key
        assert grant["fields"]["Content-Type"] == "image/png"
        assert grant["headers"] == {}
    pending = (await uploads.client.get(f"{UPLOADS}/{upload['id']}", headers=alice)).json()
    assert (pending["status"], pending["download_url"]) == ("pending", None)
    assert uploads.stored_keys() == []

    sent = await uploads.send(grant, PNG)
    assert sent.status_code in SENT, sent.text
    assert uploads.stored_keys() == [key]
    assert uploads.leftovers() == []

    completed = await complete(uploads, alice, upload["id"])
    assert completed.status_code == 200, completed.text
    ready = completed.json()
    assert (ready["id"], ready["status"], ready["expires_at"]) == (upload["id"], "ready", None)
    assert ready["completed_at"] is not None
    digest = hashlib.sha256(PNG).hexdigest() if uploads.backend == "local" else None
    assert ready["sha256"] == digest

    shown = await uploads.client.get(f"{UPLOADS}/{upload['id']}", headers=alice)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "ready"
    assert near(shown.json()["download_expires_at"], datetime.now(UTC) + timedelta(seconds=300))
    downloaded = await uploads.download(shown.json()["download_url"])
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == PNG
    assert downloaded.headers["content-type"] == "image/png"
    assert downloaded.headers["content-disposition"] == (
        "attachment; filename=\"holiday.png\"; filename*=UTF-8''holiday.png"
    )
    if uploads.backend == "local":
        assert downloaded.headers["x-content-type-options"] == "nosniff"

    assert await uploads.rows(
        "SELECT status, size, content_type, filename, key, sha256 FROM upload_file"
    ) == [("ready", len(PNG), "image/png", "holiday.png", key, digest)]
    listed = (await uploads.client.get(UPLOADS, headers=alice)).json()
    assert [item["id"] for item in listed["items"]] == [upload["id"]]


async def test_local_put_refuses_a_wrong_size_then_the_same_url_works(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)
        assert_problem(await uploads.send(grant, PNG + b"!"), 413, "upload.too_large")
        assert_problem(await uploads.send(grant, PNG[:-1]), 400, "upload.size_mismatch")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([], [])

        # Without a Content-Length the body is counted as it streams: refused at the first
        # byte too many, before the rest is read.
        pulled: list[int] = []

        async def body(*chunks: bytes) -> AsyncIterator[bytes]:
            for index, chunk in enumerate(chunks):
                pulled.append(index)
                yield chunk

        chunks = (PNG[:500], PNG[500:] + b"!", b"never read", b"never read")
        streamed = await uploads.client.put(
            grant["url"], content=body(*chunks), headers=grant["headers"]
        )
        assert_problem(streamed, 413, "upload.too_large")
        assert pulled == [0, 1]
        short = await uploads.client.put(
            grant["url"], content=body(PNG[:500], PNG[500:-1]), headers=grant["headers"]
        )
        assert_problem(short, 400, "upload.size_mismatch")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([], [])

        assert (await uploads.send(grant, PNG)).status_code == 204
        assert uploads.stored_keys() == [key_of(grant["upload"])]
        assert (await complete(uploads, alice, grant["upload"]["id"])).status_code == 200


async def test_local_put_refuses_another_content_type(upload_app: UploadAppFactory) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)
        for sent_as in ("text/html", "image/jpeg", "application/octet-stream"):
            refused = await uploads.send(grant, PNG, content_type=sent_as)
            assert_problem(refused, 415, "upload.content_type_mismatch")
        untyped = await uploads.client.put(grant["url"], content=PNG)  # no Content-Type
        assert_problem(untyped, 415, "upload.content_type_mismatch")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([], [])
        assert (await uploads.send(grant, PNG)).status_code == 204
        assert (await complete(uploads, alice, grant["upload"]["id"])).status_code == 200


async def test_content_must_match_the_declared_type(uploads: UploadApp) -> None:
    alice = await uploads.user()
    grant = await granted(uploads, alice)  # image/png, len(PNG) bytes
    upload_id, key = grant["upload"]["id"], key_of(grant["upload"])
    html = HTML.ljust(len(PNG), b" ")  # the declared size, but an HTML page
    assert (await uploads.send(grant, html)).status_code in SENT
    assert_problem(await complete(uploads, alice, upload_id), 409, "upload.type_mismatch")
    assert uploads.stored_keys() == []
    # The grant may be used again, now with a real PNG.
    assert (await uploads.send(grant, PNG)).status_code in SENT
    assert (await complete(uploads, alice, upload_id)).json()["status"] == "ready"
    assert uploads.stored_keys() == [key]

    text = "Grüße, 世界 — notes\n".encode()
    notes = await uploads.upload(alice, text, filename="notes.txt", content_type="text/plain")
    assert notes["status"] == "ready"
    for content in (b"plain\x00text", b"caf\xe9 latin-1"):
        grant = await granted(uploads, alice, content_type="text/plain", size=len(content))
        assert (await uploads.send(grant, content)).status_code in SENT
        refused = await complete(uploads, alice, grant["upload"]["id"])
        assert_problem(refused, 409, "upload.type_mismatch")
        assert key_of(grant["upload"]) not in uploads.stored_keys()


async def test_local_signed_urls_expire(upload_app: UploadAppFactory) -> None:
    async with upload_app("local", upload_url_ttl=60) as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)
        upload = grant["upload"]
        expires = int(dict(parse_qsl(urlsplit(grant["url"]).query))["expires"])
        assert abs(expires - (time.time() + 60)) < 10
        # Moving `expires` into the past breaks the signature, which covers it.
        aged = with_query(grant["url"], expires=str(expires - 120))
        assert_problem(await uploads.send(grant, PNG, url=aged), 403, "upload.invalid_signature")
        # A genuinely signed URL whose time has passed.
        signer, past = uploads.container.signer(), int(time.time()) - 1
        facts = (upload["id"], key_of(upload), len(PNG), "image/png", past)
        expired = with_query(grant["url"], expires=str(past), signature=signer.sign("PUT", *facts))
        assert_problem(await uploads.send(grant, PNG, url=expired), 403, "upload.url_expired")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([], [])

        assert (await uploads.send(grant, PNG)).status_code == 204
        assert (await complete(uploads, alice, upload["id"])).status_code == 200
        download = with_query(grant["url"], expires=str(past), signature=signer.sign("GET", *facts))
        assert_problem(await uploads.client.get(download), 403, "upload.url_expired")


async def test_local_tampered_urls_are_refused(upload_app: UploadAppFactory) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        grant, other = await granted(uploads, alice), await granted(uploads, alice)
        url, query = grant["url"], dict(parse_qsl(urlsplit(grant["url"]).query))
        flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
        tampered = [
            with_query(url, signature=flipped),
            with_query(url, signature=""),
            with_query(url, expires=str(int(query["expires"]) + 1)),
            with_query(url, expires="soon"),
            url.replace(grant["upload"]["id"], other["upload"]["id"]),
        ]
        for bad in tampered:
            refused = await uploads.send(grant, PNG, url=bad)
            assert_problem(refused, 403, "upload.invalid_signature")
        # An upload URL does not download, and signs one upload only.
        assert_problem(await uploads.client.get(url), 403, "upload.invalid_signature")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([], [])

        ready = await uploads.upload(alice, PNG)
        shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
        download = shown.json()["download_url"]
        assert (await uploads.client.get(download)).content == PNG
        bad_download = with_query(download, signature=flipped)
        assert_problem(await uploads.client.get(bad_download), 403, "upload.invalid_signature")


async def test_local_bytes_are_stored_once(upload_app: UploadAppFactory) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)
        assert (await uploads.send(grant, PNG)).status_code == 204
        again = await uploads.send(grant, PNG[:8] + b"\x00" * (len(PNG) - 8))
        assert_problem(again, 409, "upload.already_stored")
        assert uploads.root is not None
        assert (uploads.root / key_of(grant["upload"])).read_bytes() == PNG
        assert uploads.leftovers() == []
        assert (await complete(uploads, alice, grant["upload"]["id"])).status_code == 200
        assert_problem(await uploads.send(grant, PNG), 409, "upload.already_completed")


async def test_complete_needs_the_bytes_and_happens_once(uploads: UploadApp) -> None:
    alice = await uploads.user()
    grant = await granted(uploads, alice)
    upload_id = grant["upload"]["id"]
    assert_problem(await complete(uploads, alice, upload_id), 409, "upload.not_received")
    assert (await uploads.send(grant, PNG)).status_code in SENT
    assert (await complete(uploads, alice, upload_id)).status_code == 200
    assert_problem(await complete(uploads, alice, upload_id), 409, "upload.already_completed")
    assert uploads.stored_keys() == [key_of(grant["upload"])]


async def test_delete_removes_record_and_object(uploads: UploadApp) -> None:
    alice = await uploads.user()
    ready = await uploads.upload(alice, PNG)
    download = (await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)).json()
    sent_only = await granted(uploads, alice)  # pending, its bytes stored
    assert (await uploads.send(sent_only, PNG)).status_code in SENT
    assert len(uploads.stored_keys()) == 2

    for upload_id in (ready["id"], sent_only["upload"]["id"]):
        deleted = await uploads.client.delete(f"{UPLOADS}/{upload_id}", headers=alice)
        assert (deleted.status_code, deleted.content) == (204, b"")
        gone = await uploads.client.get(f"{UPLOADS}/{upload_id}", headers=alice)
        assert_problem(gone, 404, "upload.not_found")
        again = await uploads.client.delete(f"{UPLOADS}/{upload_id}", headers=alice)
        assert_problem(again, 404, "upload.not_found")
    assert uploads.stored_keys() == []
    rows = await uploads.rows("SELECT status, deleted_at FROM upload_file")
    assert [status for status, deleted_at in rows if deleted_at is not None] == ["deleted"] * 2
    assert (await uploads.client.get(UPLOADS, headers=alice)).json()["items"] == []

    stale = await uploads.download(download["download_url"])
    if uploads.backend == "local":
        assert_problem(stale, 404, "upload.not_found")
    else:
        # The object is gone: S3 answers 404 NoSuchKey, or 403 to a caller who may not list
        # the bucket (moto answers 403 too, for a presigned URL with response overrides).
        assert stale.status_code in (403, 404), stale.text
        assert b"PNG" not in stale.content


async def test_size_and_type_limits_at_grant(upload_app: UploadAppFactory) -> None:
    mib = 1024 * 1024
    async with upload_app("local") as uploads:  # defaults: 25 MiB; images, PDF, text
        alice = await uploads.user()
        for content_type in ("image/png", "image/webp", "application/pdf", "text/plain"):
            assert (await uploads.grant(alice, content_type=content_type)).status_code == 201
        assert (await uploads.grant(alice, size=25 * mib)).status_code == 201
        assert_problem(await uploads.grant(alice, size=25 * mib + 1), 413, "upload.too_large")
        for content_type in ("text/html", "application/zip", "video/mp4"):
            refused = await uploads.grant(alice, content_type=content_type)
            assert_problem(refused, 415, "upload.unsupported_type")

    async with upload_app("local", max_size=len(PDF), allowed_types=["application/pdf"]) as uploads:
        alice = await uploads.user()
        ready = await uploads.upload(alice, PDF, filename="a.pdf", content_type="application/pdf")
        assert ready["status"] == "ready"
        too_large = await uploads.grant(alice, content_type="application/pdf", size=len(PDF) + 1)
        assert_problem(too_large, 413, "upload.too_large")
        for content_type in ("image/png", "text/plain"):
            refused = await uploads.grant(alice, content_type=content_type, size=10)
            assert_problem(refused, 415, "upload.unsupported_type")
        mine = "SELECT id FROM upload_file WHERE owner_id = :owner"
        assert await uploads.rows(mine, owner=ready["owner_id"]) == [(ready["id"],)]


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_quota_by_files(upload_app: UploadAppFactory, backend: str) -> None:
    async with upload_app(backend, quota_files=2) as uploads:
        alice, bob = await uploads.user(), await uploads.user()
        ready = await uploads.upload(alice, PNG)
        await granted(uploads, alice)  # a pending upload counts too
        assert_problem(await uploads.grant(alice), 409, "upload.quota_exceeded")
        await granted(uploads, bob)  # per user
        deleted = await uploads.client.delete(f"{UPLOADS}/{ready['id']}", headers=alice)
        assert deleted.status_code == 204
        await granted(uploads, alice)
        assert_problem(await uploads.grant(alice), 409, "upload.quota_exceeded")


async def test_quota_by_bytes(upload_app: UploadAppFactory) -> None:
    async with upload_app("local", quota_bytes=2 * len(PNG)) as uploads:
        alice = await uploads.user()
        first = await uploads.upload(alice, PNG)
        await granted(uploads, alice)  # exactly at the quota
        assert_problem(await uploads.grant(alice, size=1), 409, "upload.quota_exceeded")
        deleted = await uploads.client.delete(f"{UPLOADS}/{first['id']}", headers=alice)
        assert deleted.status_code == 204
        assert_problem(await uploads.grant(alice, size=len(PNG) + 1), 409, "upload.quota_exceeded")
        await granted(uploads, alice, size=len(PNG))


async def test_expired_pending_upload_does_not_count(upload_app: UploadAppFactory) -> None:
    async with upload_app("local", quota_files=1) as uploads:
        alice = await uploads.user()
        stale = await granted(uploads, alice)
        assert_problem(await uploads.grant(alice), 409, "upload.quota_exceeded")
        await uploads.execute(
            "UPDATE upload_file SET expires_at = created_at WHERE id = :id",
            id=stale["upload"]["id"],
        )
        await granted(uploads, alice)
        assert (await uploads.send(stale, PNG)).status_code == 204
        expired = await complete(uploads, alice, stale["upload"]["id"])
        assert_problem(expired, 409, "upload.expired")


async def test_malformed_input_is_422_naming_the_field(upload_app: UploadAppFactory) -> None:
    valid: dict[str, Any] = {"filename": "a.txt", "content_type": "text/plain", "size": 12}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"filename", "content_type", "size"}),
        ({"filename": "a.txt"}, {"content_type", "size"}),
        (valid | {"owner_id": "usr_01JD8X0000000000000000000A"}, {"owner_id"}),
        (valid | {"size": "12"}, {"size"}),
        (valid | {"size": -1}, {"size"}),
        (valid | {"size": True}, {"size"}),
        (valid | {"size": 12.5}, {"size"}),
        (valid | {"content_type": "text/plain; charset=utf-8"}, {"content_type"}),
        (valid | {"content_type": "not a media type"}, {"content_type"}),
        (valid | {"content_type": "image/"}, {"content_type"}),
        (valid | {"filename": ""}, {"filename"}),
        (valid | {"filename": 42}, {"filename"}),
    ]
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        for body, fields in cases:
            response = await uploads.client.post(UPLOADS, json=body, headers=alice)
            problem = assert_problem(response, 422, "core.validation_error")
            assert {error["field"] for error in problem["errors"]} == fields, body
        assert await uploads.rows("SELECT id FROM upload_file") == []


async def test_client_filenames_are_cleaned_metadata(uploads: UploadApp) -> None:
    alice = await uploads.user()
    long_name = "x" * 296 + ".png"
    cleaned = {
        "../../etc/passwd": "passwd",
        "re\x00po\x07rt\x1b\n.png": "report.png",
        long_name: "x" * 251 + ".png",
    }
    for raw, expected in cleaned.items():
        upload = (await granted(uploads, alice, filename=raw))["upload"]
        assert upload["filename"] == expected
    assert len(cleaned[long_name]) == 255

    name = "Été 2026 — plage 🏖.png"
    ready = await uploads.upload(alice, PNG, filename=name)
    assert ready["filename"] == name
    shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
    disposition = (await uploads.download(shown.json()["download_url"])).headers[
        "content-disposition"
    ]
    assert disposition.startswith('attachment; filename="Ete 2026')
    fallback, _, exact = disposition.removeprefix('attachment; filename="').partition('"; ')
    assert fallback.isascii()
    assert fallback.isprintable()
    assert fallback.endswith(" plage .png")
    assert exact == f"filename*=UTF-8''{quote(name, safe='')}"
    assert unquote(exact.removeprefix("filename*=UTF-8''")) == name

    owner = ready["owner_id"]
    assert uploads.stored_keys() == [f"uploads/{owner}/{ready['id']}"]
    rows = await uploads.rows("SELECT id, key, filename FROM upload_file ORDER BY id")
    assert sorted(filename for _, _, filename in rows) == sorted([*cleaned.values(), name])
    # Every key is made by the server, whatever the filename.
    assert [key for _, key, _ in rows] == [f"uploads/{owner}/{id_}" for id_, _, _ in rows]


async def test_concurrent_grants_never_exceed_the_quota(upload_app: UploadAppFactory) -> None:
    async with upload_app("local", quota_files=3) as uploads:
        alice = await uploads.user()
        answers = await asyncio.gather(*(uploads.grant(alice) for _ in range(10)))
        assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 7
        for refused in (a for a in answers if a.status_code == 409):
            assert_problem(refused, 409, "upload.quota_exceeded")
        mine = "SELECT count(*) FROM upload_file WHERE owner_id = :owner"
        owner = next(a for a in answers if a.status_code == 201).json()["upload"]["owner_id"]
        assert await uploads.rows(mine, owner=owner) == [(3,)]
