"""Apps with the `user`, `auth` and `upload` plugins on each storage backend, a real
S3-compatible server (moto's standalone server, in a subprocess) for the `s3` backend, and
a client-side helper that uploads the way a browser or mobile app would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import text

from core.kernel import Kernel
from core.settings import ConfigurationError
from tests.conftest import AppFactory, make_settings
from tests.support.served import free_port

UPLOADS = "/api/v1/uploads"
AUTH = "/api/v1/auth"
PLUGINS = "user,auth,mail,upload"
PASSWORD = "correct horse battery staple"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 20 + b"%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
S3_KEY_ID = "testing-key"
S3_SECRET = "testing-secret"
S3_REGION = "us-east-1"
SENT = (200, 201, 204)  # what the local PUT (204) and a presigned POST to S3 answer


@dataclass(frozen=True)
class S3Server:
    """A running moto server: its endpoint, and a synchronous client to inspect it."""

    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        )

    def new_bucket(self) -> str:
        name = f"courtyard-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's standalone S3 server on a free port, for the whole run (of this worker: its
    request recorder's log is a file of its own, not `moto_recording` in the working
    directory that every worker's server would share)."""
    port = free_port()
    recording = tmp_path_factory.mktemp("moto") / "recording"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)
    try:
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class UploadApp:
    """The app, a client for it, and the storage it writes to."""

    client: httpx.AsyncClient
    backend: str
    root: Path | None = None
    s3: S3Server | None = None
    bucket: str | None = None
    _users: int = field(default=0)

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    @property
    def container(self) -> Any:
        return self.app.state.kernel.container_of("upload")

    async def user(self, email: str | None = None) -> dict[str, str]:
        """Sign up a new user; the Authorization header that acts as them."""
        self._users += 1
        email = email or f"user{self._users}-{uuid.uuid4().hex[:6]}@example.com"
        response = await self.client.post(
            f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "name": "Uploader"}
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def admin(self) -> dict[str, str]:
        headers = await self.user()
        me = (await self.client.get("/api/v1/users/me", headers=headers)).json()
        await self.execute("UPDATE \"user\" SET role = 'admin' WHERE id = :id", id=me["id"])
        return headers

    async def grant(
        self,
        headers: dict[str, str],
        *,
        filename: str = "picture.png",
        content_type: str = "image/png",
        size: int = len(PNG),
    ) -> httpx.Response:
        return await self.client.post(
            UPLOADS,
            json={"filename": filename, "content_type": content_type, "size": size},
            headers=headers,
        )

    async def send(
        self,
        grant: dict[str, Any],
        content: bytes,
        *,
        content_type: str | None = None,
        fields: dict[str, str] | None = None,
        url: str | None = None,
    ) -> httpx.Response:
        """Send `content` as the grant says: a PUT to our signed URL (local) or a multipart
        POST of the presigned fields to the S3 server, over real HTTP."""
        target = url or grant["url"]
        if grant["method"] == "PUT":
            headers = dict(grant["headers"])
            if content_type is not None:
                headers["Content-Type"] = content_type
            return await self.client.put(target, content=content, headers=headers)
        form = dict(grant["fields"]) | (fields or {})
        if content_type is not None:
            form["Content-Type"] = content_type
        async with httpx.AsyncClient() as http:
            return await http.post(target, data=form, files={"file": ("upload", content)})

    async def download(self, url: str) -> httpx.Response:
        if url.startswith("http://testserver/"):
            return await self.client.get(url)
        async with httpx.AsyncClient() as http:
            return await http.get(url)

    async def upload(
        self, headers: dict[str, str], content: bytes = PNG, **grant: Any
    ) -> dict[str, Any]:
        """Grant, send and complete; the ready upload."""
        granted = await self.grant(headers, size=len(content), **grant)
        assert granted.status_code == 201, granted.text
        sent = await self.send(granted.json(), content)
        assert sent.status_code in (200, 201, 204), sent.text
        upload_id = granted.json()["upload"]["id"]
        completed = await self.client.post(f"{UPLOADS}/{upload_id}/complete", headers=headers)
        assert completed.status_code == 200, completed.text
        body: dict[str, Any] = completed.json()
        return body

    def stored_keys(self) -> list[str]:
        """Every object in storage (files under the root, or keys in the bucket)."""
        if self.s3 is not None:
            assert self.bucket is not None
            return self.s3.keys(self.bucket)
        assert self.root is not None
        return sorted(
            str(path.relative_to(self.root))
            for path in self.root.rglob("*")
            if path.is_file() and ".incoming" not in path.parts
        )

    def leftovers(self) -> list[str]:
        """Temporary files of the local backend (none may survive a request)."""
        if self.root is None:
            return []
        incoming = self.root / ".incoming"
        return sorted(p.name for p in incoming.iterdir()) if incoming.exists() else []

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self.app.state.database.write_engine.connect() as connection:
            result = await connection.execute(text(query), params)
            return [tuple(row) for row in result.all()]

    async def execute(self, statement: str, **params: Any) -> None:
        async with self.app.state.database.write_engine.begin() as connection:
            await connection.execute(text(statement), params)


UploadAppFactory = Callable[..., AbstractAsyncContextManager[UploadApp]]


@pytest.fixture
def upload_app(
    app_client: AppFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> UploadAppFactory:
    """`async with upload_app("local", max_size=1000) as app:` — `upload` settings as keywords
    (`core={...}` for core settings); "s3" starts (once) moto's server and uses a new bucket."""

    @asynccontextmanager
    async def factory(
        backend: str = "local", *, core: dict[str, Any] | None = None, **settings: Any
    ) -> AsyncIterator[UploadApp]:
        root = s3 = bucket = None
        if backend == "s3":
            s3 = request.getfixturevalue("s3_server")
            bucket = settings.pop("s3_bucket", None) or s3.new_bucket()
            settings = {
                "backend": "s3",
                "s3_bucket": bucket,
                "s3_endpoint_url": s3.endpoint,
                "s3_region": S3_REGION,
                "s3_access_key_id": S3_KEY_ID,
                "s3_secret_access_key": S3_SECRET,
                **settings,
            }
        else:
            root = settings.setdefault("local_root", tmp_path / "uploads")
        options = {"enabled_plugins": PLUGINS, **(core or {})}
        async with app_client(plugin_settings={"upload": settings}, **options) as client:
            yield UploadApp(client, backend, root=root, s3=s3, bucket=bucket)

    return factory


@pytest.fixture(params=["local", "s3"])
async def uploads(
    request: pytest.FixtureRequest, upload_app: UploadAppFactory
) -> AsyncIterator[UploadApp]:
    """The app with default settings, once per storage backend."""
    async with upload_app(request.param) as app:
        yield app


def key_of(upload: dict[str, Any], prefix: str = "uploads") -> str:
    return f"{prefix}/{upload['owner_id']}/{upload['id']}"


async def granted(uploads: UploadApp, headers: dict[str, str], **grant: Any) -> dict[str, Any]:
    response = await uploads.grant(headers, **grant)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def complete(uploads: UploadApp, headers: dict[str, str], upload_id: str) -> httpx.Response:
    return await uploads.client.post(f"{UPLOADS}/{upload_id}/complete", headers=headers)


def refusal(tmp_path: Path, **upload: Any) -> str:
    """The one-line message that stops the app from being built with these `upload`
    settings."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", enabled_plugins=PLUGINS
    )
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(settings, plugin_settings={"upload": upload})
    message = str(caught.value)
    assert message.startswith("invalid configuration: "), message
    assert "\n" not in message
    assert "Traceback" not in message
    return message
