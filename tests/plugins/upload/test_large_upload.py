"""A 100 MB upload over real HTTP to `courtyard serve`, with the server's memory kept flat.

The `local` backend's signed PUT streams the body to disk, and its signed GET streams the
file back: neither may hold the file in memory. The server runs as a deployment runs it
(the `courtyard` console script, uvicorn, settings from the environment, a SQLite file
migrated with `courtyard db upgrade`); the client generates the body in chunks, hashing
them as they go, and never holds the whole file either. The server's peak resident set
(`VmHWM`) is read from /proc after a warm-up upload and again after the large one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.plugins.upload.conftest import AUTH, PASSWORD, PLUGINS, UPLOADS
from tests.support.courtyard_cli import PROJECT_ROOT, run_courtyard
from tests.support.served import server_output, serving, wait_until_live

MiB = 1024 * 1024
SIZE = 100 * MiB  # the large upload
WARM_UP_SIZE = 8 * MiB  # past the app-wide body limit too, so the same code path runs
CHUNK = MiB  # what the client sends at a time
MAX_SIZE = 200_000_000  # the upload plugin's limit on the server
MAX_GROWTH = 40 * MiB  # how much the server's peak RSS may grow for the large upload
DEADLINE = 60.0  # seconds for the whole exchange


def server_environment(database_url: str, root: Path) -> dict[str, str]:
    """Everything `courtyard serve` and `courtyard db upgrade` are configured with."""
    return {
        "COURTYARD_DATABASE_URL": database_url,
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
        "COURTYARD_ENV": "test",
        "COURTYARD_UPLOAD__LOCAL_ROOT": str(root),
        "COURTYARD_UPLOAD__MAX_SIZE": str(MAX_SIZE),
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def memory_of(pid: int) -> dict[str, int]:
    """`VmHWM` (peak resident set) and `VmRSS` of process `pid`, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            amount, unit = rest.split()
            assert unit == "kB", line
            values[key] = int(amount) * 1024
    assert values.keys() == {"VmHWM", "VmRSS"}, values
    return values


class Generated:
    """`size` bytes of ASCII text (valid `text/plain`), made `CHUNK` bytes at a time and
    hashed as they are sent: the whole body never exists at once."""

    def __init__(self, size: int) -> None:
        assert size % CHUNK == 0
        self.size = size
        self.sent = 0
        self.digest = hashlib.sha256()
        self._block = base64.b64encode(os.urandom(CHUNK * 3 // 4))  # CHUNK ASCII bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index in range(self.size // CHUNK):
            label = f"chunk {index:08d}\n".encode()
            piece = label + self._block[len(label) :]
            self.digest.update(piece)
            self.sent += len(piece)
            yield piece


async def sign_up(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        f"{AUTH}/signup",
        json={"email": "big@example.com", "password": PASSWORD, "name": "Big Files"},
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], body: Generated, filename: str
) -> dict[str, Any]:
    """Grant, stream `body` to the signed URL (with its Content-Length), complete."""
    granted = await client.post(
        UPLOADS,
        json={"filename": filename, "content_type": "text/plain", "size": body.size},
        headers=headers,
    )
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert grant["method"] == "PUT"
    put_headers = grant["headers"] | {"Content-Length": str(body.size)}
    sent = await client.put(grant["url"], content=body, headers=put_headers)
    assert sent.status_code == 204, sent.text
    assert body.sent == body.size
    upload_id = grant["upload"]["id"]
    completed = await client.post(f"{UPLOADS}/{upload_id}/complete", headers=headers)
    assert completed.status_code == 200, completed.text
    ready: dict[str, Any] = completed.json()
    assert ready["status"] == "ready"
    assert ready["size"] == body.size
    assert ready["sha256"] == body.digest.hexdigest()
    return ready


async def download_digest(
    client: httpx.AsyncClient, headers: dict[str, str], upload_id: str
) -> tuple[str, int]:
    """SHA-256 and length of the file served at the upload's download URL, streamed."""
    shown = await client.get(f"{UPLOADS}/{upload_id}", headers=headers)
    assert shown.status_code == 200, shown.text
    url = shown.json()["download_url"]
    assert url.startswith(str(client.base_url)), url
    digest, length = hashlib.sha256(), 0
    async with client.stream("GET", url) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/plain")
        async for piece in response.aiter_bytes():
            digest.update(piece)
            length += len(piece)
    return digest.hexdigest(), length


async def test_a_100_mb_upload_streams_through_a_running_server_in_flat_memory(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    root = tmp_path / "uploads"
    environment = server_environment(f"sqlite+aiosqlite:///{tmp_path / 'courtyard.db'}", root)
    migrated = run_courtyard("db", "upgrade", cwd=tmp_path, env=environment)
    assert migrated.returncode == 0, migrated.stderr
    assert "upload" in migrated.stdout, migrated.stdout
    log = tmp_path / "serve.log"

    with serving(environment, tmp_path, log) as (base_url, process):
        await wait_until_live(base_url, process, log)
        # The process measured is the one serving (uvicorn runs in it: one worker).
        assert f"Started server process [{process.pid}]" in server_output(log)
        async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE) as client:
            try:
                alice = await sign_up(client)
                # Warm up: the same path on a smaller file, so that lazy imports, worker
                # threads and allocator arenas are in place before the baseline.
                small = await upload(client, alice, Generated(WARM_UP_SIZE), "warm-up.txt")
                assert (await download_digest(client, alice, small["id"]))[1] == WARM_UP_SIZE
                before = memory_of(process.pid)

                body = Generated(SIZE)
                ready = await upload(client, alice, body, "large.txt")
                after_upload = memory_of(process.pid)
                downloaded, length = await download_digest(client, alice, ready["id"])
                after_download = memory_of(process.pid)
            except AssertionError as failure:
                raise AssertionError(
                    f"{failure}\n--- courtyard serve:\n{server_output(log)}"
                ) from None
        assert process.poll() is None, server_output(log)  # still serving

    assert (downloaded, length) == (body.digest.hexdigest(), SIZE)
    stored = [path for path in root.rglob("*") if path.is_file()]
    assert sorted(path.stat().st_size for path in stored) == [WARM_UP_SIZE, SIZE]
    assert not any(path.parent.name == ".incoming" for path in stored)  # no temporary left

    upload_growth = after_upload["VmHWM"] - before["VmHWM"]
    download_growth = after_download["VmHWM"] - before["VmHWM"]
    print(
        f"\nserver peak RSS: {before['VmHWM'] / MiB:.1f} MiB after warm-up, "
        f"{after_upload['VmHWM'] / MiB:.1f} MiB after the 100 MB upload "
        f"(+{upload_growth / MiB:.1f} MiB), {after_download['VmHWM'] / MiB:.1f} MiB after "
        f"downloading it (+{download_growth / MiB:.1f} MiB); "
        f"took {time.monotonic() - started:.1f}s"
    )
    assert upload_growth < MAX_GROWTH, (before, after_upload)
    assert download_growth < MAX_GROWTH, (before, after_download)
    assert time.monotonic() - started < DEADLINE
