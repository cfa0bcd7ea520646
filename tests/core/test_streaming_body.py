"""Routes marked `streams_request_body(n)` read bodies past `COURTYARD_MAX_REQUEST_BODY`.

Driven through the upload plugin's signed PUT on the `local` backend, the one route that
is marked: it takes bodies up to the upload `max_size`, far above a small app-wide limit,
while every other route still answers 413 `core.payload_too_large` past that limit. The
route's own bound is enforced before reading (Content-Length) and while reading (chunked),
and a refused body leaves nothing in storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AppFactory
from tests.plugins.upload.conftest import AUTH, PASSWORD, PLUGINS, UPLOADS, UploadApp
from tests.support.problems import assert_problem

LIMIT = 1024  # the app-wide body limit
MAX_SIZE = 256 * 1024  # the upload plugin's largest file, hence the PUT route's limit
BIG = 64 * 1024  # well past LIMIT, well under MAX_SIZE
CHUNK = 4096


def text_bytes(size: int, seed: str = "courtyard") -> bytes:
    """`size` bytes of ASCII text (valid `text/plain`), different for each seed."""
    line = f"{seed} 0123456789 abcdefghijklmnopqrstuvwxyz\n".encode()
    return (line * (size // len(line) + 1))[:size]


class Counted:
    """A request body sent in chunks, counting how many bytes the server pulled."""

    def __init__(self, data: bytes, chunk: int = CHUNK) -> None:
        self.data = data
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            piece = self.data[start : start + self.chunk]
            self.sent += len(piece)
            yield piece


@pytest.fixture
async def uploads(app_client: AppFactory, tmp_path: Path) -> AsyncIterator[UploadApp]:
    """`user`, `auth` and `upload` (local backend), with a 1 KiB app-wide body limit."""
    root = tmp_path / "uploads"
    async with app_client(
        enabled_plugins=PLUGINS,
        max_request_body=LIMIT,
        plugin_settings={"upload": {"local_root": root, "max_size": MAX_SIZE}},
    ) as client:
        yield UploadApp(client, "local", root=root)


async def grant_text(app: UploadApp, headers: dict[str, str], size: int) -> dict[str, Any]:
    granted = await app.grant(headers, filename="notes.txt", content_type="text/plain", size=size)
    assert granted.status_code == 201, granted.text
    grant: dict[str, Any] = granted.json()
    assert grant["method"] == "PUT"
    return grant


async def put(
    app: UploadApp, grant: dict[str, Any], body: bytes | Counted, length: int | None = None
) -> httpx.Response:
    """PUT `body` to the grant's signed URL; a `Counted` body goes chunked unless `length`
    is given, in which case it is sent as that Content-Length."""
    headers = dict(grant["headers"])
    if length is not None:
        headers["Content-Length"] = str(length)
    return await app.client.put(grant["url"], content=body, headers=headers)


async def upload_count(app: UploadApp) -> int:
    return int((await app.rows("SELECT count(*) FROM upload_file"))[0][0])


# -- the marked route takes large bodies -------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_signed_put_accepts_a_body_past_the_app_wide_limit(
    uploads: UploadApp, framing: str
) -> None:
    alice = await uploads.user()
    data = text_bytes(BIG, framing)
    grant = await grant_text(uploads, alice, len(data))
    body: bytes | Counted = data if framing == "content-length" else Counted(data)

    sent = await put(uploads, grant, body)

    if framing == "chunked":
        assert sent.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in sent.request.headers
    else:
        assert sent.request.headers["content-length"] == str(BIG)
    assert sent.status_code == 204, sent.text
    upload_id = grant["upload"]["id"]
    completed = await uploads.client.post(f"{UPLOADS}/{upload_id}/complete", headers=alice)
    assert completed.status_code == 200, completed.text
    assert completed.json()["sha256"] == hashlib.sha256(data).hexdigest()
    shown = await uploads.client.get(f"{UPLOADS}/{upload_id}", headers=alice)
    downloaded = await uploads.download(shown.json()["download_url"])
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == data
    assert uploads.leftovers() == []


async def test_signed_put_takes_a_body_of_exactly_max_size(uploads: UploadApp) -> None:
    alice = await uploads.user()
    data = text_bytes(MAX_SIZE, "at-max")
    grant = await grant_text(uploads, alice, MAX_SIZE)
    assert (await put(uploads, grant, data)).status_code == 204
    assert len(uploads.stored_keys()) == 1


# -- every other route keeps the app-wide limit ------------------------------------------------


def padded_json(size: int) -> bytes:
    """A valid upload request padded with spaces to `size` bytes."""
    core = b'{"filename": "a.txt", "content_type": "text/plain", "size": 1}'
    return core[:-1] + b" " * (size - len(core)) + b"}"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_other_routes_answer_413_past_the_app_wide_limit(
    uploads: UploadApp, framing: str
) -> None:
    alice = await uploads.user()
    body = Counted(padded_json(BIG))
    headers = alice | {"Content-Type": "application/json"}
    declared = {"Content-Length": str(BIG)} if framing == "content-length" else {}

    response = await uploads.client.post(UPLOADS, content=body, headers=headers | declared)

    problem = assert_problem(response, 413, "core.payload_too_large")
    assert str(LIMIT) in problem["detail"]
    if framing == "content-length":
        assert body.sent == 0  # refused on the header alone
    else:
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert body.sent < BIG  # reading stopped soon after the limit
    assert await upload_count(uploads) == 0
    # Below the limit, the same request goes through.
    fine = await uploads.client.post(UPLOADS, content=padded_json(LIMIT), headers=headers)
    assert fine.status_code == 201, fine.text


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_signup_keeps_the_app_wide_limit(uploads: UploadApp, framing: str) -> None:
    core = f'{{"email": "big@example.com", "password": "{PASSWORD}", "name": "Big"}}'.encode()
    data = core[:-1] + b" " * BIG + b"}"
    body: bytes | Counted = data if framing == "content-length" else Counted(data)
    response = await uploads.client.post(
        f"{AUTH}/signup", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "core.payload_too_large")


@pytest.mark.parametrize(
    ("method", "suffix", "status", "code"),
    [
        pytest.param("POST", "", 405, "core.method_not_allowed", id="another-method-same-path"),
        pytest.param("PATCH", "", 405, "core.method_not_allowed", id="patch-same-path"),
        pytest.param("PUT", "/more", 404, "core.not_found", id="longer-path"),
        pytest.param("PUT", "s", 404, "core.not_found", id="similar-path"),
    ],
)
async def test_near_misses_of_the_marked_route_are_answered_without_reading_the_body(
    uploads: UploadApp, method: str, suffix: str, status: int, code: str
) -> None:
    """The marked route's limit goes with its endpoint, not its path: a near miss is
    answered 404/405 and not a byte of its oversized body is read."""
    alice = await uploads.user()
    data = text_bytes(BIG)
    grant = await grant_text(uploads, alice, len(data))
    base, _, query = grant["url"].partition("?")
    body = Counted(data)

    response = await uploads.client.request(
        method,
        f"{base}{suffix}?{query}",
        content=body,
        headers=grant["headers"] | {"Content-Length": str(BIG)},
    )

    assert_problem(response, status, code)
    assert body.sent == 0
    assert uploads.stored_keys() == []
    assert uploads.leftovers() == []


# -- the marked route's own bounds -------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "length"),
    [
        pytest.param(MAX_SIZE, MAX_SIZE + 1, id="past-max-size"),
        pytest.param(MAX_SIZE, 10 * MAX_SIZE, id="far-past-max-size"),
        pytest.param(BIG, BIG + 1, id="past-declared-size"),
    ],
)
async def test_a_content_length_too_large_is_refused_before_reading(
    uploads: UploadApp, declared: int, length: int
) -> None:
    alice = await uploads.user()
    grant = await grant_text(uploads, alice, declared)
    body = Counted(text_bytes(length, "too-long"))

    refused = await put(uploads, grant, body, length=length)

    assert refused.request.headers["content-length"] == str(length)
    problem = assert_problem(refused, 413, "upload.too_large")
    assert str(declared) in problem["detail"]
    assert body.sent == 0  # refused on the header alone
    assert uploads.stored_keys() == []
    assert uploads.leftovers() == []
    # Nothing was stored, so the grant still works.
    data = text_bytes(declared, "right")
    assert (await put(uploads, grant, data)).status_code == 204
    assert len(uploads.stored_keys()) == 1


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(BIG + 1, id="one-byte-too-many"),
        pytest.param(2 * BIG, id="twice-the-size"),
        pytest.param(MAX_SIZE + CHUNK, id="past-max-size"),
    ],
)
async def test_a_chunked_put_larger_than_declared_is_refused_and_leaves_nothing(
    uploads: UploadApp, sent: int
) -> None:
    alice = await uploads.user()
    grant = await grant_text(uploads, alice, BIG)
    body = Counted(text_bytes(sent, "overflow"))

    refused = await put(uploads, grant, body)

    assert refused.request.headers.get("transfer-encoding") == "chunked"
    problem = assert_problem(refused, 413, "upload.too_large")
    assert str(BIG) in problem["detail"]
    assert body.sent <= BIG + CHUNK  # reading stopped at the first byte too many
    assert uploads.stored_keys() == []
    assert uploads.leftovers() == []
    upload_id = grant["upload"]["id"]
    assert (await uploads.rows("SELECT status FROM upload_file WHERE id = :id", id=upload_id)) == [
        ("pending",)
    ]
    not_received = await uploads.client.post(f"{UPLOADS}/{upload_id}/complete", headers=alice)
    assert_problem(not_received, 409, "upload.not_received")
    # The grant can be used again with the right body.
    data = text_bytes(BIG, "right")
    assert (await put(uploads, grant, Counted(data))).status_code == 204
    completed = await uploads.client.post(f"{UPLOADS}/{upload_id}/complete", headers=alice)
    assert completed.status_code == 200, completed.text
    assert completed.json()["sha256"] == hashlib.sha256(data).hexdigest()
