"""The presigned POST of the `s3` backend, and what completion does with an upload that
broke it.

moto, the S3 server these tests run against, does NOT evaluate the conditions of a
presigned-POST policy: it stores whatever is posted, of any size, type or key. So these
tests check two things: the policy we sign (decoded, condition by condition), and that
`POST /uploads/{id}/complete` refuses and deletes what such a POST left behind. A real S3
service additionally refuses the POST itself (403) before anything is stored; no test here
claims moto does.

Content that does not match its declared type (HTML bytes declared as PNG) is covered on
both backends in `test_flow.py`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.db.ids import new_id
from tests.plugins.upload.conftest import (
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

SIGNATURE_FIELDS = {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"}


def policy_of(grant: dict[str, Any]) -> dict[str, Any]:
    """The decoded policy document of a presigned POST."""
    policy: dict[str, Any] = json.loads(base64.b64decode(grant["fields"]["policy"]))
    return policy


def head(uploads: UploadApp, key: str) -> dict[str, Any]:
    assert uploads.s3 is not None
    response: dict[str, Any] = uploads.s3.client().head_object(Bucket=uploads.bucket, Key=key)
    return response


async def test_the_policy_pins_the_exact_key_size_type_and_bucket(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        me = (await uploads.client.get("/api/v1/users/me", headers=alice)).json()
        grant = await granted(uploads, alice)
        upload, now = grant["upload"], datetime.now(UTC)
        key = f"uploads/{me['id']}/{upload['id']}"

        assert grant["method"] == "POST"
        assert uploads.s3 is not None
        assert grant["url"] == f"{uploads.s3.endpoint}/{uploads.bucket}"
        fields = grant["fields"]
        assert set(fields) == {"key", "Content-Type", "policy"} | SIGNATURE_FIELDS
        assert (fields["key"], fields["Content-Type"]) == (key, "image/png")
        assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"

        policy = policy_of(grant)
        assert set(policy) == {"expiration", "conditions"}
        expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        expiration = expiration.replace(tzinfo=UTC)
        assert abs((expiration - (now + timedelta(seconds=900))).total_seconds()) < 10
        assert abs((expiration - datetime.fromisoformat(grant["expires_at"])).total_seconds()) < 2

        conditions = policy["conditions"]
        assert ["content-length-range", len(PNG), len(PNG)] in conditions
        exact = [condition for condition in conditions if isinstance(condition, dict)]
        # Every other condition is an exact match: no `starts-with` leaves room anywhere.
        assert len(exact) == len(conditions) - 1
        assert all(len(condition) == 1 for condition in exact)
        pinned = {name: value for condition in exact for name, value in condition.items()}
        assert len(pinned) == len(exact)
        signed = {name: fields[name] for name in SIGNATURE_FIELDS - {"x-amz-signature"}}
        assert pinned == {
            "bucket": uploads.bucket,
            "key": key,
            "Content-Type": "image/png",
            **signed,
        }


async def test_the_policy_follows_the_settings_and_the_declared_file(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3", upload_url_ttl=120, key_prefix="tenant-a/files") as uploads:
        alice = await uploads.user()
        declared = {"filename": "paper.pdf", "content_type": "application/pdf", "size": len(PDF)}
        grant = await granted(uploads, alice, **declared)
        now, upload = datetime.now(UTC), grant["upload"]
        policy = policy_of(grant)
        expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        expiration = expiration.replace(tzinfo=UTC)
        assert abs((expiration - (now + timedelta(seconds=120))).total_seconds()) < 10
        conditions = policy["conditions"]
        assert ["content-length-range", len(PDF), len(PDF)] in conditions
        assert {"Content-Type": "application/pdf"} in conditions
        assert {"key": key_of(upload, "tenant-a/files")} in conditions
        assert grant["fields"]["key"] == key_of(upload, "tenant-a/files")


async def test_the_download_url_is_a_presigned_get_of_an_attachment(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        ready = await uploads.upload(alice, PNG, filename="holiday.png")
        shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
        assert shown.status_code == 200, shown.text
        url = urlsplit(shown.json()["download_url"])
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        assert all(len(values) == 1 for values in parse_qs(url.query).values())

        assert url.path == f"/{uploads.bucket}/{key_of(ready)}"
        disposition = "attachment; filename=\"holiday.png\"; filename*=UTF-8''holiday.png"
        assert query["response-content-disposition"] == disposition
        assert query["response-content-type"] == "image/png"
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert 290 <= int(query["X-Amz-Expires"]) <= 300  # download_url_ttl, 5 minutes
        assert query["X-Amz-Signature"]

        downloaded = await uploads.download(shown.json()["download_url"])
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == PNG
        assert downloaded.headers["content-disposition"] == disposition
        assert downloaded.headers["content-type"] == "image/png"


async def test_a_post_of_another_size_is_discarded_at_completion(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)  # len(PNG) bytes, the policy's only length
        upload_id, key = grant["upload"]["id"], key_of(grant["upload"])
        for content in (PNG + b"!", PNG[:-1]):
            assert (await uploads.send(grant, content)).status_code in SENT
            assert uploads.stored_keys() == [key]  # moto stored it; S3 would have refused
            refused = await complete(uploads, alice, upload_id)
            problem = assert_problem(refused, 409, "upload.not_received")
            assert f"{len(content)} bytes arrived, {len(PNG)} declared" in problem["detail"]
            assert uploads.stored_keys() == []
            shown = await uploads.client.get(f"{UPLOADS}/{upload_id}", headers=alice)
            assert shown.json()["status"] == "pending"

        assert (await uploads.send(grant, PNG)).status_code in SENT
        assert (await complete(uploads, alice, upload_id)).json()["status"] == "ready"
        assert uploads.s3 is not None
        assert uploads.bucket is not None
        assert uploads.s3.read(uploads.bucket, key) == PNG


async def test_a_post_to_another_key_leaves_nothing_to_complete(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)
        upload, upload_id = grant["upload"], grant["upload"]["id"]
        elsewhere = [
            f"uploads/{upload['owner_id']}/{new_id('upl')}",
            "elsewhere/picture.png",
            f"{key_of(upload)}/../x",
        ]
        for other in elsewhere:
            sent = await uploads.send(grant, PNG, fields={"key": other})
            assert sent.status_code in SENT, sent.text
            assert key_of(upload) not in uploads.stored_keys()
            refused = await complete(uploads, alice, upload_id)
            problem = assert_problem(refused, 409, "upload.not_received")
            assert "nothing arrived" in problem["detail"]

        assert (await uploads.send(grant, PNG)).status_code in SENT
        assert (await complete(uploads, alice, upload_id)).json()["status"] == "ready"
        assert key_of(upload) in uploads.stored_keys()


async def test_a_post_of_another_content_type_is_discarded_at_completion(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        grant = await granted(uploads, alice)  # image/png
        upload_id, key = grant["upload"]["id"], key_of(grant["upload"])
        for sent_as in ("text/html", "image/svg+xml", "application/octet-stream"):
            # Real PNG bytes, but stored to be served as another type.
            assert (await uploads.send(grant, PNG, content_type=sent_as)).status_code in SENT
            assert head(uploads, key)["ContentType"] == sent_as  # moto stored it as sent
            refused = await complete(uploads, alice, upload_id)
            problem = assert_problem(refused, 409, "upload.type_mismatch")
            assert sent_as in problem["detail"]
            assert uploads.stored_keys() == []

        assert (await uploads.send(grant, PNG)).status_code in SENT
        assert head(uploads, key)["ContentType"] == "image/png"
        assert (await complete(uploads, alice, upload_id)).json()["status"] == "ready"
