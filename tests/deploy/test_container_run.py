"""The containers' commands, run on this machine the way compose.yaml runs them.

No image is built here (no image registry is reachable), so each command runs in the
test's virtualenv with the environment compose.yaml gives its container: the
`storage-bucket` script against moto's S3 server started as compose.yaml starts it, the
`migrate` command, then the Dockerfile's CMD, probed with the Dockerfile's HEALTHCHECK
command as Docker would probe it, until a SIGTERM makes it drain and a second one stops
it. Only what cannot exist outside Docker is replaced: the hosts `db` and `redis` (the
test's database, and the test Redis when COURTYARD_TEST_REDIS_URL is set), the store's
address, and the port.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.container_files import compose, environment, exec_form, healthcheck_command, last
from tests.support.courtyard_cli import COURTYARD, PROJECT_ROOT, run_courtyard
from tests.support.served import (
    STOP_DEADLINE,
    free_port,
    server_output,
    serving,
    stop_process,
    wait_until_live,
)

READY_DEADLINE = 20.0  # seconds for the health check to pass once the server is live
DRAIN_NOTICED = 3.0  # seconds for the health check to fail after SIGTERM


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    """moto's S3 server with the `storage` service's environment; its endpoint."""
    storage = environment(compose({"COURTYARD_SECRET_KEY": "unused"})["services"]["storage"])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **storage},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "moto's server exited"
                assert time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        stop_process(process)


def probe(command: list[str], image_port: str, port: int) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command aimed at `port` instead of the image's; exit
    status 0 means healthy."""
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    argv = [part.replace(f"127.0.0.1:{image_port}", f"127.0.0.1:{port}") for part in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


def run_python(arguments: list[str], env: dict[str, str]) -> str:
    """`python ARGUMENTS` with `env` added to this environment; what it printed."""
    done = subprocess.run(
        [sys.executable, *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_the_containers_commands_create_the_bucket_migrate_serve_and_drain(
    tmp_path: Path, database_url: str, store: str
) -> None:
    bucket = f"courtyard-{uuid.uuid4().hex[:12]}"
    services = compose(
        {
            "COURTYARD_SECRET_KEY": secrets.token_urlsafe(48),
            "COURTYARD_UPLOAD__S3_ENDPOINT_URL": store,
            "COURTYARD_UPLOAD__S3_BUCKET": bucket,
        }
    )["services"]
    replaced = {"COURTYARD_DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
    test_redis = os.environ.get("COURTYARD_TEST_REDIS_URL")
    if test_redis:
        replaced["COURTYARD_REDIS_URL"] = test_redis

    def env_of(service: str) -> dict[str, str]:
        values = environment(services[service])
        if not test_redis:
            values.pop("COURTYARD_REDIS_URL")
        return {**values, **replaced}

    # storage-bucket: creates the bucket, then finds it there on the next `up`.
    script = services["storage-bucket"]["command"]
    assert script[0] == "python"
    for expected in (f"created bucket {bucket}", f"bucket {bucket} exists"):
        assert run_python(script[1:], env_of("storage-bucket")) == expected

    # migrate: every enabled plugin's branch to its head.
    migrate = services["migrate"]["command"]
    assert migrate[0] == "courtyard"
    migrated = run_courtyard(*migrate[1:], cwd=tmp_path, env=env_of("migrate"))
    assert migrated.returncode == 0, migrated.stderr
    assert "upgraded: user" in migrated.stdout, migrated.stdout

    # app: the image's CMD (serving() appends --host 127.0.0.1 --port N, which win).
    command = exec_form(last("CMD"))
    assert command[0] == "courtyard"
    image_port = command[command.index("--port") + 1]
    check = healthcheck_command()
    log = tmp_path / "serve.log"
    with serving(env_of("app"), tmp_path, log, [str(COURTYARD), *command[1:]]) as (url, process):
        await wait_until_live(url, process, log)
        port = int(url.rpartition(":")[2])
        deadline = time.monotonic() + READY_DEADLINE
        while (healthy := probe(check, image_port, port)).returncode != 0:
            assert time.monotonic() < deadline, f"{healthy.stderr}\n{server_output(log)}"
            await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["migrations"] == "ok", ready
        assert ready["checks"]["upload.storage"] == "ok", ready  # the bucket made above

        process.send_signal(signal.SIGTERM)  # `docker stop`: drain first
        deadline = time.monotonic() + DRAIN_NOTICED
        while (draining := probe(check, image_port, port)).returncode == 0:
            assert time.monotonic() < deadline, server_output(log)
            await asyncio.sleep(0.1)
        assert "503" in draining.stderr, draining.stderr
        assert process.poll() is None, "stopped before its drain was over"

        process.send_signal(signal.SIGTERM)  # a second one ends the drain
        status = process.wait(timeout=STOP_DEADLINE)

    output = server_output(log)
    assert status == 0, output
    assert "Traceback" not in output, output
