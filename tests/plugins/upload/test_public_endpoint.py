"""`COURTYARD_UPLOAD__S3_PUBLIC_ENDPOINT_URL`: the app reaches the store at one address
(`s3_endpoint_url`) and browsers at another, so the presigned upload and download URLs are
signed for the public one (SigV4 signs the host: a URL cannot be rewritten afterwards).

The store is moto's standalone server. The app reaches it at `http://127.0.0.1:<port>`,
browsers at `http://localhost:<proxy port>`, a TCP proxy in front of the same server that
counts its connections: the app's own requests (stat, read, delete, readiness) must never
go through it, and presigning makes no request at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.kernel import Kernel
from tests.conftest import make_settings
from tests.plugins.upload.conftest import (
    PLUGINS,
    PNG,
    SENT,
    UPLOADS,
    S3Server,
    UploadApp,
    UploadAppFactory,
    complete,
    granted,
    key_of,
    refusal,
)
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard
from tests.support.tcpproxy import TcpProxy

SETTING = "COURTYARD_UPLOAD__S3_PUBLIC_ENDPOINT_URL"
S3 = {"backend": "s3", "s3_bucket": "files", "s3_endpoint_url": "http://storage:5000"}


async def shown(app: UploadApp, headers: dict[str, str], upload_id: str) -> dict[str, Any]:
    response = await app.client.get(f"{UPLOADS}/{upload_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_presigned_urls_name_the_public_endpoint_and_work_from_there(
    upload_app: UploadAppFactory, s3_server: S3Server
) -> None:
    host, _, port = urlsplit(s3_server.endpoint).netloc.partition(":")  # 127.0.0.1:<port>
    async with TcpProxy(host, int(port)) as browsers_way:
        public = f"http://localhost:{browsers_way.port}"
        async with upload_app("s3", s3_public_endpoint_url=public) as app:
            alice = await app.user()

            grant = await granted(app, alice, filename="holiday.png")
            assert grant["method"] == "POST"
            assert grant["url"] == f"{public}/{app.bucket}"
            assert browsers_way.accepted == 0  # presigning made no request

            # The browser's upload: the presigned POST, through the public address.
            sent = await app.send(grant, PNG)
            assert sent.status_code in SENT, sent.text
            assert browsers_way.accepted >= 1
            key = key_of(grant["upload"])
            assert app.stored_keys() == [key]

            # Everything the app asks the store itself goes to s3_endpoint_url.
            through_public = browsers_way.accepted
            completed = await complete(app, alice, grant["upload"]["id"])
            assert completed.status_code == 200, completed.text
            assert completed.json()["status"] == "ready"
            ready = await app.client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["upload.storage"] == "ok"
            download_url = (await shown(app, alice, grant["upload"]["id"]))["download_url"]
            assert download_url.startswith(f"{public}/{app.bucket}/{key}?")
            assert browsers_way.accepted == through_public

            downloaded = await app.download(download_url)
            assert downloaded.status_code == 200, downloaded.text
            assert downloaded.content == PNG
            assert downloaded.headers["content-type"] == "image/png"
            assert browsers_way.accepted > through_public

            # Both clients closed (as at shutdown), then opened again on next use.
            await app.container.storage().close()
            through_public = browsers_way.accepted
            again = await granted(app, alice)
            assert again["url"] == f"{public}/{app.bucket}"
            download_url = (await shown(app, alice, grant["upload"]["id"]))["download_url"]
            assert download_url.startswith(f"{public}/{app.bucket}/{key}?")
            deleted = await app.client.delete(f"{UPLOADS}/{grant['upload']['id']}", headers=alice)
            assert deleted.status_code == 204, deleted.text
            assert app.stored_keys() == []
            assert browsers_way.accepted == through_public


@pytest.mark.parametrize("public", [None, ""], ids=["unset", "empty"])
async def test_without_it_presigned_urls_name_s3_endpoint_url(
    upload_app: UploadAppFactory, monkeypatch: pytest.MonkeyPatch, public: str | None
) -> None:
    if public is not None:
        monkeypatch.setenv(SETTING, public)  # `${VAR:-}` in a compose file gives ""
    async with upload_app("s3") as app:
        assert app.s3 is not None
        alice = await app.user()

        ready = await app.upload(alice, PNG)

        shown_ready = await shown(app, alice, ready["id"])
        assert shown_ready["download_url"].startswith(f"{app.s3.endpoint}/{app.bucket}/")
        assert (await app.download(shown_ready["download_url"])).content == PNG
        grant = await granted(app, alice)
        assert grant["url"] == f"{app.s3.endpoint}/{app.bucket}"


@pytest.mark.parametrize(
    "value",
    [
        "localhost:9000",  # no scheme
        "s3.example.com",
        "ftp://files.example.com",
        "http://",
        "http://localhost:port",
        "https://s3.example.com/?region=eu",
        "https://s3.example.com/#files",
    ],
)
def test_a_bad_public_endpoint_stops_the_app_with_one_line_naming_it(
    tmp_path: Path, value: str
) -> None:
    message = refusal(tmp_path, **S3, s3_public_endpoint_url=value)

    assert f"{SETTING}: expected an http(s) URL" in message
    assert repr(value) in message


def test_s3_endpoint_url_is_checked_the_same_way(tmp_path: Path) -> None:
    message = refusal(tmp_path, **{**S3, "s3_endpoint_url": "storage:5000"})

    assert "COURTYARD_UPLOAD__S3_ENDPOINT_URL: expected an http(s) URL" in message


def test_credentials_in_the_public_endpoint_are_refused_and_not_shown(tmp_path: Path) -> None:
    message = refusal(
        tmp_path, **S3, s3_public_endpoint_url="http://admin:hunter2-secret@localhost:9000"
    )

    assert f"{SETTING}: expected an http(s) URL" in message
    assert "hunter2-secret" not in message


def test_a_public_endpoint_without_s3_endpoint_url_is_refused(tmp_path: Path) -> None:
    message = refusal(
        tmp_path, backend="s3", s3_bucket="files", s3_public_endpoint_url="http://localhost:9000"
    )

    assert "s3_public_endpoint_url needs s3_endpoint_url" in message


def test_the_local_backend_ignores_it_like_every_s3_setting(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", enabled_plugins=PLUGINS
    )
    upload = {
        "local_root": tmp_path / "uploads",
        "s3_endpoint_url": "http://storage:5000",
        "s3_public_endpoint_url": "http://localhost:9000/",
    }

    kernel = Kernel.build(settings, plugin_settings={"upload": upload})

    assert kernel.container_of("upload").storage().name == "local"


def test_the_command_fails_in_one_line_on_a_bad_public_endpoint(tmp_path: Path) -> None:
    result = run_courtyard(
        "uploads",
        "purge",
        cwd=tmp_path,
        env={
            "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
            "COURTYARD_ENABLED_PLUGINS": PLUGINS,
            "COURTYARD_UPLOAD__BACKEND": "s3",
            "COURTYARD_UPLOAD__S3_BUCKET": "files",
            "COURTYARD_UPLOAD__S3_ENDPOINT_URL": "http://storage:5000",
            SETTING: "localhost:9000",
        },
    )

    assert_one_line_error(result, SETTING, "expected an http(s) URL", "'localhost:9000'")
    assert not (tmp_path / "never.db").exists()
