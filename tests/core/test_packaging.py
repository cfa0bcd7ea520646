"""Courtyard as a package: its version, its declared dependencies, and its extras.

The full check (a wheel installed alone in a new venv) is `make wheel-check`
(tests/packaging/wheel_check.py); these are the cheap parts of it. A library an extra
brings is made missing here the way Python documents for it: `sys.modules[name] = None`
makes its import fail as if it were not installed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.courtyard_cli import (
    PROJECT_ROOT,
    assert_one_line_error,
    parse_table,
    rows_by,
    run_courtyard,
)
from tests.support.plugin_selection import ENABLED, suite_plugins

S3_SETTINGS = {"COURTYARD_UPLOAD__BACKEND": "s3", "COURTYARD_UPLOAD__S3_BUCKET": "files"}
GITHUB = {"kind": "github", "client_id": "app", "client_secret": "not-a-real-secret"}
OAUTH_SETTINGS = {"COURTYARD_OAUTH__PROVIDERS": json.dumps({"github": GITHUB})}
S3_LINE = (
    "COURTYARD_UPLOAD__BACKEND=s3 needs the s3 extra (aiobotocore, botocore are not "
    "installed): pip install 'courtyard[s3]'"
)
OAUTH_LINE = (
    "COURTYARD_OAUTH__PROVIDERS needs the oauth extra (httpx is not installed): "
    "pip install 'courtyard[oauth]'"
)
# Checked only once the extra is there: its value is never read without it.
KEYS_SETTINGS = {"COURTYARD_AUTH__JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----"}
KEYS_LINE = (
    "COURTYARD_AUTH__JWT_PRIVATE_KEY needs the keys extra (cryptography is not installed): "
    "pip install 'courtyard[keys]'"
)
# Run the `courtyard` command with the libraries named in argv[1] missing.
WITHOUT = """
import sys
for name in filter(None, sys.argv.pop(1).split(",")):
    sys.modules[name] = None
sys.argv[0] = "courtyard"
from core.cli import main
main()
"""


def courtyard_without(
    missing: list[str], *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`courtyard ARGS` in a new process where the `missing` libraries cannot be imported,
    configured by `env` alone (and the suite's plugin selection)."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COURTYARD_") and key != "PYTHONPATH"
    }
    environ.update(
        PYTHONPATH=str(PROJECT_ROOT),
        COLUMNS="200",
        NO_COLOR="1",
        TERM="dumb",
        COURTYARD_DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'courtyard.db'}",
        COURTYARD_SHUTDOWN_DRAIN="0",
    )
    environ[ENABLED] = suite_plugins()
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(missing), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_is_the_installed_distributions_even_when_the_configuration_is_broken(
    tmp_path: Path,
) -> None:
    result = run_courtyard(
        "--version", cwd=tmp_path, env={"COURTYARD_ENV": "staging", "COURTYARD_DATABSE_URL": "x"}
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"courtyard {version('courtyard')}\n",
        "",
    )
    assert (
        version("courtyard")
        == tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    )


def test_help_lists_the_version_option(tmp_path: Path) -> None:
    result = run_courtyard("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--version" in result.stdout
    assert "Print the version and exit." in result.stdout


@pytest.mark.parametrize(
    ("missing", "settings", "line"),
    [
        (["aiobotocore", "botocore"], S3_SETTINGS, S3_LINE),
        (["httpx"], OAUTH_SETTINGS, OAUTH_LINE),
        (["cryptography"], KEYS_SETTINGS, KEYS_LINE),
    ],
    ids=["s3", "oauth", "keys"],
)
@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"]], ids=" ".join)
def test_an_integration_configured_without_its_extra_stops_with_one_line(
    tmp_path: Path, missing: list[str], settings: dict[str, str], line: str, command: list[str]
) -> None:
    result = courtyard_without(missing, *command, cwd=tmp_path, env=settings)
    assert assert_one_line_error(result, line) == f"courtyard: error: invalid configuration: {line}"
    assert not (tmp_path / "courtyard.db").exists()  # stopped before touching the database


def test_plugins_check_names_each_missing_extra(tmp_path: Path) -> None:
    result = courtyard_without(
        ["aiobotocore", "botocore", "httpx", "cryptography"],
        "plugins",
        "--check",
        cwd=tmp_path,
        env={**S3_SETTINGS, **OAUTH_SETTINGS, **KEYS_SETTINGS},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert f"FAIL upload: invalid configuration: {S3_LINE}" in lines
    assert f"FAIL oauth: invalid configuration: {OAUTH_LINE}" in lines
    assert f"FAIL auth: invalid configuration: {KEYS_LINE}" in lines
    assert [line.split()[1] for line in lines if line.startswith("ok")] == ["mail", "user"]


def test_with_the_extras_installed_the_same_configuration_is_fine(tmp_path: Path) -> None:
    result = courtyard_without([], "plugins", cwd=tmp_path, env={**S3_SETTINGS, **OAUTH_SETTINGS})
    assert result.returncode == 0, result.stderr
    rows = rows_by(parse_table(result.stdout), "NAME")
    assert rows["upload"]["ENABLED"] == rows["oauth"]["ENABLED"] == "yes"


def test_the_default_app_imports_no_optional_library(tmp_path: Path) -> None:
    """What `courtyard serve` builds (its command line, the app, a started lifespan) with
    the default settings imports none of what only a configured integration uses."""
    script = """
import asyncio, json, sys
from core.cli import build_cli
from core.cli.context import CliContext
from core.kernel import Kernel
from core.app import create_app

context = CliContext(Kernel.build())
build_cli(context)
app = create_app(context.kernel.settings)

async def start() -> None:
    async with app.router.lifespan_context(app):
        pass

asyncio.run(start())
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COURTYARD_")}
    environ.update(
        PYTHONPATH=str(PROJECT_ROOT),
        COURTYARD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'courtyard.db'}",
    )
    environ[ENABLED] = suite_plugins()
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = set(json.loads(result.stdout.splitlines()[-1]))
    assert {"fastapi", "sqlalchemy", "plugins"} <= imported  # it did build the app
    optional = {"aiobotocore", "botocore", "httpx", "authlib", "joserfc", "redis", "pytest"}
    assert imported & optional == set()
    # Nor Alembic (and Mako): the server reads its revisions in a child process.
    assert imported & {"alembic", "mako"} == set()


# -- every import is declared ------------------------------------------------------------

# Files whose imports an extra (and not the core dependencies) may satisfy: they are imported
# only when what they serve is configured (or, for core/testing, by a test suite).
EXTRA_OF = {
    "plugins/upload/storage/s3.py": "s3",
    "plugins/oauth/providers.py": "oauth",
    "plugins/oauth/oidc.py": "oauth",
    "core/telemetry.py": "telemetry",
    "core/logging.py": "telemetry",
    "core/testing/": "testing",
    "plugins/auth/tokens.py": "keys",
}


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    extras = {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def _third_party_imports(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            tops |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.partition(".")[0])
    return {t for t in tops if t not in sys.stdlib_module_names and t not in {"core", "plugins"}}


def test_every_import_of_core_and_plugins_is_a_declared_dependency() -> None:
    dependencies, extras = _declared()
    distributions = packages_distributions()
    undeclared = []
    for path in sorted([*PROJECT_ROOT.glob("core/**/*.py"), *PROJECT_ROOT.glob("plugins/**/*.py")]):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        allowed = set(dependencies)
        for prefix, extra in EXTRA_OF.items():
            if relative.startswith(prefix):
                allowed |= extras[extra]
        for module in sorted(_third_party_imports(path)):
            provided_by = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not provided_by & allowed:
                undeclared.append(f"{relative}: {module} ({', '.join(sorted(provided_by))})")
    assert undeclared == []


def test_the_dev_extra_brings_every_other_extra_but_the_benchmarks() -> None:
    _, extras = _declared()
    dev = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert {"s3", "oauth", "keys", "testing"} <= set(extras)
    assert '"courtyard[s3,oauth,keys,testing]"' in dev
    assert extras["s3"] == {"aiobotocore", "botocore"}
    assert extras["oauth"] == {"httpx", "authlib", "joserfc"}
