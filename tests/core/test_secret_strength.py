"""A production signing secret must be strong: at least 32 bytes and 10 distinct characters.

The rule is one public function, `core.settings.weak_secret_reason`, which plugins reuse
for secrets of their own that Courtyard signs or keys with. Checked here through the real
`courtyard` console script, as a deployment meets it, and on the function itself.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from core import settings
from tests.support.courtyard_cli import assert_one_line_error, run_courtyard

GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
NINE_DISTINCT = ("abcdefghi" * 4)[:32]  # 32 bytes, 9 distinct characters
TEN_DISTINCT = ("abcdefghij" * 4)[:32]  # 32 bytes, 10 distinct characters


def courtyard_plugins(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`courtyard plugins`: any command that builds the kernel reads (and checks) settings."""
    environ = {
        "COURTYARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secret.db'}",
        "COURTYARD_ENABLED_PLUGINS": "user",
        **env,
    }
    return run_courtyard("plugins", cwd=tmp_path, env=environ)


def assert_refused(result: subprocess.CompletedProcess[str], secret: str) -> str:
    """Exit 2, one `courtyard: error:` line naming the setting and how to make a good one,
    no traceback, and nothing of the secret (not even its first characters)."""
    line = assert_one_line_error(result, "COURTYARD_SECRET_KEY", GENERATE, status=2)
    assert secret not in result.stderr + result.stdout
    assert secret[:8] not in line
    return line


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        pytest.param("a" * 32, "distinct characters", id="32-times-a"),
        pytest.param(secrets.token_urlsafe(24)[:31], "32 bytes", id="31-random-characters"),
        pytest.param(NINE_DISTINCT, "distinct characters", id="32-bytes-9-distinct"),
    ],
)
def test_production_refuses_a_weak_secret_in_one_line(
    tmp_path: Path, secret: str, reason: str
) -> None:
    """Stops: `COURTYARD_ENV=production COURTYARD_SECRET_KEY=aaaa…(32)` starting."""
    result = courtyard_plugins(tmp_path, COURTYARD_ENV="production", COURTYARD_SECRET_KEY=secret)
    line = assert_refused(result, secret)
    assert reason in line, line


def test_production_accepts_32_bytes_with_10_distinct_characters(tmp_path: Path) -> None:
    result = courtyard_plugins(
        tmp_path, COURTYARD_ENV="production", COURTYARD_SECRET_KEY=TEN_DISTINCT
    )
    assert result.returncode == 0, result.stderr
    assert TEN_DISTINCT not in result.stdout + result.stderr


def test_a_weak_secret_is_fine_in_development(tmp_path: Path) -> None:
    result = courtyard_plugins(tmp_path, COURTYARD_ENV="development", COURTYARD_SECRET_KEY="a" * 32)
    assert result.returncode == 0, result.stderr


# -- the public rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["", "a" * 64, NINE_DISTINCT, TEN_DISTINCT[:31], "é" * 16, "0123456789" * 2],
    ids=["empty", "64-times-a", "9-distinct", "31-bytes", "32-bytes-1-distinct", "20-bytes"],
)
def test_weak_secret_reason_names_a_weak_secret(secret: str) -> None:
    reason = settings.weak_secret_reason(secret)
    assert reason is not None
    assert f"{settings.MIN_SECRET_BYTES} bytes" in reason
    assert f"{settings.MIN_SECRET_DISTINCT_CHARS} distinct characters" in reason
    assert GENERATE in reason
    assert "\n" not in reason
    if secret:
        assert secret not in reason


@pytest.mark.parametrize(
    "secret",
    [TEN_DISTINCT, secrets.token_urlsafe(48), "éèêëàâäîïôö" * 2],
    ids=["32-bytes-10-distinct", "token-urlsafe-48", "22-characters-44-bytes-11-distinct"],
)
def test_weak_secret_reason_accepts_a_strong_secret(secret: str) -> None:
    assert settings.weak_secret_reason(secret) is None


def test_weak_secret_reason_takes_a_secret_str_or_bytes() -> None:
    assert settings.weak_secret_reason(SecretStr("a" * 32)) is not None
    assert settings.weak_secret_reason(SecretStr(TEN_DISTINCT)) is None
    assert settings.weak_secret_reason(b"a" * 32) is not None
    assert settings.weak_secret_reason(bytes(range(32))) is None
