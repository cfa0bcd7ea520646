"""The `upload` plugin's settings as an operator gives them: a bad one stops the app and the
`courtyard` command with one clear line naming it (and never echoing a secret); a good one
given in the environment changes what users may upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import make_settings
from tests.plugins.upload.conftest import PDF, PLUGINS, PNG, UploadAppFactory, refusal
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard
from tests.support.problems import assert_problem

SECRET = "wJalrXUtnFEMI-very-secret-value"
S3 = {"backend": "s3", "s3_bucket": "files"}


@pytest.mark.parametrize(
    ("upload", "fragments"),
    [
        ({"backend": "ftp"}, ["COURTYARD_UPLOAD__BACKEND", "'local' or 's3'", "'ftp'"]),
        ({"backend": "s3"}, ["s3_bucket is required when backend is 's3'"]),
        (
            {**S3, "s3_access_key_id": "AKIAEXAMPLE"},
            ["set both s3_access_key_id and s3_secret_access_key, or neither"],
        ),
        (
            {**S3, "s3_secret_access_key": SECRET},
            ["set both s3_access_key_id and s3_secret_access_key, or neither"],
        ),
        (
            {"allowed_types": "image/*,nonsense"},
            ["COURTYARD_UPLOAD__ALLOWED_TYPES", "'nonsense' is not a media type pattern"],
        ),
        ({"allowed_types": ["*/png"]}, ["COURTYARD_UPLOAD__ALLOWED_TYPES", "'*/png'"]),
        ({"allowed_types": ""}, ["COURTYARD_UPLOAD__ALLOWED_TYPES"]),
        (
            {"key_prefix": "/abs"},
            ["COURTYARD_UPLOAD__KEY_PREFIX", "no leading, trailing or double"],
        ),
        (
            {"key_prefix": "a//b"},
            ["COURTYARD_UPLOAD__KEY_PREFIX", "no leading, trailing or double"],
        ),
        ({"key_prefix": "uploads/"}, ["COURTYARD_UPLOAD__KEY_PREFIX"]),
        (
            {"pending_ttl": 600, "upload_url_ttl": 900},
            ["pending_ttl must be at least upload_url_ttl"],
        ),
        (
            {"purge_interval": 5},
            ["COURTYARD_UPLOAD__PURGE_INTERVAL", "greater than or equal to 10"],
        ),
        ({"max_size": 0}, ["COURTYARD_UPLOAD__MAX_SIZE"]),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_a_bad_setting_stops_the_app_with_one_line_naming_it(
    tmp_path: Path, upload: dict[str, Any], fragments: list[str]
) -> None:
    message = refusal(tmp_path, **upload)

    assert message.startswith("invalid configuration: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert SECRET not in message


@pytest.mark.parametrize(
    "upload",
    [
        {**S3, "s3_secret_access_key": SECRET},  # the key id is missing
        {**S3, "s3_access_key_id": "AKIAEXAMPLE", "s3_secret_access_key": [SECRET]},  # not text
        {"backend": "ftp", "s3_secret_access_key": SECRET, "s3_access_key_id": "AKIAEXAMPLE"},
    ],
)
def test_a_refusal_never_shows_the_secret_access_key(
    tmp_path: Path, upload: dict[str, Any]
) -> None:
    message = refusal(tmp_path, **upload)

    assert SECRET not in message
    assert "AKIAEXAMPLE" not in message  # the key id is credentials too


def test_create_app_refuses_to_build_an_app_with_a_bad_setting(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", enabled_plugins=PLUGINS
    )

    with pytest.raises(ConfigurationError, match="COURTYARD_UPLOAD__KEY_PREFIX"):
        create_app(settings, plugin_settings={"upload": {"key_prefix": "a//b"}})


def test_the_command_fails_in_one_line_on_bad_environment_settings(tmp_path: Path) -> None:
    base = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
        "COURTYARD_ENABLED_PLUGINS": PLUGINS,
    }

    bad_backend = run_courtyard(
        "uploads", "purge", cwd=tmp_path, env={**base, "COURTYARD_UPLOAD__BACKEND": "ftp"}
    )
    half_credentials = run_courtyard(
        "uploads",
        "purge",
        cwd=tmp_path,
        env={
            **base,
            "COURTYARD_UPLOAD__BACKEND": "s3",
            "COURTYARD_UPLOAD__S3_BUCKET": "files",
            "COURTYARD_UPLOAD__S3_SECRET_ACCESS_KEY": SECRET,
        },
    )

    assert_one_line_error(bad_backend, "COURTYARD_UPLOAD__BACKEND", "'ftp'")
    assert_one_line_error(half_credentials, "s3_access_key_id", "s3_secret_access_key")
    assert SECRET not in half_credentials.stderr
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(
    "allowed", ["image/png, application/pdf", '["image/png", "application/pdf"]']
)
async def test_allowed_types_from_the_environment_decide_what_may_be_uploaded(
    upload_app: UploadAppFactory, monkeypatch: pytest.MonkeyPatch, allowed: str
) -> None:
    monkeypatch.setenv("COURTYARD_UPLOAD__ALLOWED_TYPES", allowed)
    async with upload_app("local") as app:
        alice = await app.user()

        png = await app.grant(alice, content_type="image/png", size=len(PNG))
        pdf = await app.grant(alice, content_type="application/pdf", size=len(PDF))
        text = await app.grant(alice, filename="notes.txt", content_type="text/plain", size=5)
        jpeg = await app.grant(alice, filename="a.jpg", content_type="image/jpeg", size=5)

        assert (png.status_code, pdf.status_code) == (201, 201), (png.text, pdf.text)
        for refused in (text, jpeg):
            body = assert_problem(refused, 415, "upload.unsupported_type")
            assert "image/png, application/pdf" in body["detail"]


def test_a_malformed_json_list_of_allowed_types_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURTYARD_UPLOAD__ALLOWED_TYPES", '["image/png", ')

    message = refusal(tmp_path)

    assert "COURTYARD_UPLOAD__ALLOWED_TYPES" in message
