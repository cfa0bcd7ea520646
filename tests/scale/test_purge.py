"""Expired uploads purged by several processes at once are purged exactly once.

Uploads are made through HAProxy as a client makes them (a grant, then the bytes PUT to
the signed URL; any instance takes either, the files landing in the folder every instance
shares), then their time to complete is set long past on the primary (as in
tests/plugins/upload/test_purge_instances.py). Three `courtyard uploads purge` processes
then run at once through pgbouncer. Each process records the files it removes
(tests/scale/removals.py): every expired upload's file is removed by exactly one of them,
the counts they print add up to the uploads made, and the owner no longer sees them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scale.clients import Account, sign_up
from tests.scale.removals import removed, watching_removals
from tests.scale.topology import Topology
from tests.support.courtyard_cli import run_courtyard

pytestmark = pytest.mark.scale

UPLOADS = "/api/v1/uploads"
COUNT = 400  # four of the purge's batches of 100: work for several processes to share
AT_ONCE = 16  # uploads made side by side
PROCESSES = 3
CONTENT = b"just some text, uploaded and never completed\n"
PURGED = re.compile(r"purged (\d+) expired uploads? \((\d+) bytes\)")


async def pending_upload(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    """A granted upload whose bytes were sent, never completed."""
    granted = await client.post(
        UPLOADS,
        json={"filename": "notes.txt", "content_type": "text/plain", "size": len(CONTENT)},
        headers=owner.headers,
    )
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert grant["method"] == "PUT", grant
    sent = await client.put(grant["url"], content=CONTENT, headers=grant["headers"])
    assert sent.status_code in (200, 201, 204), sent.text
    upload: dict[str, Any] = grant["upload"]
    return upload


async def make_uploads(client: httpx.AsyncClient, owner: Account) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for start in range(0, COUNT, AT_ONCE):
        step = min(AT_ONCE, COUNT - start)
        made += await asyncio.gather(*(pending_upload(client, owner) for _ in range(step)))
    return made


def stored_keys(root: Path) -> set[str]:
    """Files under the uploads folder (the storage's own temporary folder left out)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    }


async def still_visible(client: httpx.AsyncClient, owner: Account, ids: list[str]) -> int:
    """How many of the uploads `ids` the owner still reads (200); any other answer than
    200 or 404 fails."""
    answers = await asyncio.gather(
        *(client.get(f"{UPLOADS}/{upload_id}", headers=owner.headers) for upload_id in ids)
    )
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 404}, [a.text for a in answers if a.status_code != 200]
    return statuses[200]


async def test_purges_run_at_once_by_several_processes_purge_each_upload_once(
    scale: Topology, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        owner = await sign_up(client, "purged")
        uploads = await make_uploads(client, owner)
        ids = [u["id"] for u in uploads]
        assert len(set(ids)) == COUNT
        rows = scale.primary.sql(
            "WITH expired AS (UPDATE upload_file SET expires_at = now() - interval '1 hour' "
            f"WHERE owner_id = '{owner.user_id}' AND status = 'pending' RETURNING key) "
            "SELECT key FROM expired"
        )
        expired = set(rows.splitlines())
        assert len(expired) == COUNT, rows
        assert expired <= stored_keys(scale.uploads)

        hook, watch = watching_removals(tmp_path)
        # run_courtyard puts `hook`, then this source tree, on PYTHONPATH.
        environment = {k: v for k, v in scale.environment.items() if k != "PYTHONPATH"}
        environment.update(watch)

        def purge(_: int) -> subprocess.CompletedProcess[str]:
            return run_courtyard(
                "uploads", "purge", cwd=scale.folder, env=environment, pythonpath=[hook]
            )

        started = time.monotonic()
        with ThreadPoolExecutor(PROCESSES) as pool:
            results = list(pool.map(purge, range(PROCESSES)))
        took = time.monotonic() - started

        outputs = "\n---\n".join(f"{r.stdout}{r.stderr}" for r in results)
        counts = []
        for result in results:
            assert result.returncode == 0, outputs
            found = PURGED.search(result.stdout)
            assert found, outputs
            counts.append(int(found.group(1)))
        removals = removed(tmp_path, scale.uploads)
        assert len(removals) == PROCESSES, f"not every process was watched: {removals.keys()}"
        every = Counter[str]()
        for by_one in removals.values():
            every.update(by_one)

        # Each expired upload counted once, its file removed once, by one process.
        assert sum(counts) == COUNT, (counts, outputs)
        assert set(every) == expired, set(every) ^ expired
        assert set(every.values()) == {1}, [k for k, n in every.items() if n > 1]
        assert not expired & stored_keys(scale.uploads)
        print(f"purged per process: {counts} in {took:.1f}s")

        # What the owner sees: every upload gone (reads may come from the replica, which
        # replays the purge within moments).
        deadline = time.monotonic() + 10
        while left := await still_visible(client, owner, ids[: AT_ONCE * 4]):
            assert time.monotonic() < deadline, f"{left} purged uploads still visible"
            await asyncio.sleep(0.2)
        listed = await client.get(UPLOADS, headers=owner.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == [], listed.text
