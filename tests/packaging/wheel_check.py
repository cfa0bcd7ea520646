"""`make wheel-check`: Courtyard as a user installs it, without this source tree or its venv.

Builds the wheel from a copy of the files a release ships, creates a new virtual
environment in a temporary folder, installs the wheel there with its own dependencies
only (`pip install -c constraints.txt <wheel>`: no extra, no test tool), and then, from that
environment, checks what a user sees:

- the wheel holds the `py.typed` markers, the migrations, the plugin template and LICENSE;
- none of the extras' libraries (aiobotocore, httpx, authlib, joserfc, cryptography,
  pytest-asyncio) came along, and every module of core and plugins imports but those only
  an extra runs;
- the app, built and started with the default settings, has not imported Alembic (its
  revisions are read in a child process) nor any extra's library;
- `courtyard --version`, `courtyard plugins` and `courtyard db upgrade` on a new SQLite
  database work;
- `courtyard serve` answers `/health/ready` 200 and a sign-up 201, and the account's
  token reads `/api/v1/users/me`;
- configuring the S3 backend, an OAuth provider or an asymmetric signing key without its
  extra is one line naming the extra, from `courtyard serve` (exit 2) and
  `courtyard plugins --check` (exit 1);
- a pytest run there (pytest is installed beside the wheel, httpx is not) loads the
  `courtyard` plugin and passes.

Each step prints one line; the first that fails ends the run with exit status 1 and a
message saying what was expected and what happened. pip's cache keeps a repeated run
within a minute or two.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# What a release is built from: everything else in the repository is for its developers.
SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "core", "plugins")
# Libraries that only an extra brings; the plain install must not have them.
EXTRAS_ONLY = (
    "aiobotocore", "botocore", "httpx", "authlib", "joserfc", "cryptography", "pytest_asyncio",
)  # fmt: skip
PLUGINS = ("auth", "mail", "oauth", "upload", "user")
# The modules that only run with an extra installed (the configuration asks for them).
EXTRA_MODULES = ("plugins.upload.storage.s3", "plugins.oauth.providers", "plugins.oauth.oidc")
# Imports every module of core and plugins but those and the migrations; prints the failures.
IMPORT_ALL = f"""
import importlib, json, pkgutil, core, plugins
failed = []
for package in (core, plugins):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" in module.name or module.name in {EXTRA_MODULES!r}:
            continue
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed.append(f"{{module.name}}: {{type(exc).__name__}}: {{exc}}")
print(json.dumps(failed))
"""
# Builds and starts the default app; prints the top-level modules it imported.
STARTED_APP = """
import asyncio, json, sys
from core.app import create_app

app = create_app()

async def start() -> None:
    async with app.router.lifespan_context(app):
        pass

asyncio.run(start())
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""
SERVE_DEADLINE = 30.0  # seconds for `courtyard serve` to answer /health/ready
STEP_TIMEOUT = 300.0  # seconds for any one command (an install with a cold pip cache)


class CheckFailed(Exception):
    """One step did not do what a user expects; the message says what and why."""


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="courtyard-wheel-") as scratch:
        try:
            check(Path(scratch))
        except CheckFailed as exc:
            print(f"wheel-check: FAILED: {exc}", file=sys.stderr)
            return 1
    print(f"wheel-check: passed in {time.monotonic() - started:.0f} s")
    return 0


def check(scratch: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    wheel = build_wheel(scratch)
    check_contents(wheel)
    python = install(wheel, scratch / "venv")
    home = scratch / "home"
    home.mkdir()
    env = clean_environment(
        COURTYARD_DATABASE_URL=f"sqlite+aiosqlite:///{home / 'courtyard.db'}",
        COURTYARD_SHUTDOWN_DRAIN="0",
    )
    courtyard = str(python.parent / "courtyard")

    failed = json.loads(run([str(python), "-c", IMPORT_ALL], home, env).stdout)
    if failed:
        raise CheckFailed("modules of core and plugins fail to import:\n" + "\n".join(failed))
    step("every module of core and plugins imports (but the extras' and the migrations)")

    run([courtyard, "db", "upgrade"], home, env)
    step("courtyard db upgrade migrates a new SQLite database")

    imported = set(json.loads(run([str(python), "-c", STARTED_APP], home, env).stdout))
    unwanted = sorted(imported & {"alembic", "mako", *EXTRAS_ONLY})
    if "fastapi" not in imported or unwanted:
        raise CheckFailed(f"the default app, started, imported what it should not: {unwanted}")
    step("the default app, started, imports neither Alembic nor any extra's library")

    result = run([courtyard, "--version"], home, env)
    expect(result.stdout == f"courtyard {version}\n", "courtyard --version", result)
    step(f"courtyard --version prints 'courtyard {version}'")

    result = run([courtyard, "plugins"], home, env)
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
    expect(set(PLUGINS) <= listed, f"courtyard plugins lists {', '.join(PLUGINS)}", result)
    step("courtyard plugins lists the built-in plugins")

    check_served(courtyard, home, env)
    check_missing_extras(courtyard, home, env)
    check_pytest_without_httpx(python, home, env)


def build_wheel(scratch: Path) -> Path:
    """The wheel, built without network from a copy of the shipped files (so nothing the
    build writes lands in the work tree)."""
    source = scratch / "source"
    source.mkdir()
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    dist = scratch / "dist"
    pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source))
    wheels = sorted(dist.glob("courtyard-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"building the wheel gave {[w.name for w in wheels]}, not one wheel")
    step(f"built {wheels[0].name}")
    return wheels[0]


def check_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        "core/py.typed",
        "plugins/py.typed",
        "core/migrations/script.py.mako",
        "core/cli/plugin_template/pyproject.toml.tmpl",
        "plugins/user/migrations/versions/9a7e5c310001_create_user.py",
    ]
    missing = [name for name in needed if name not in names]
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        missing.append("*.dist-info/licenses/LICENSE")
    strays = sorted({name.split("/")[0] for name in names} - {"core", "plugins"})
    strays = [name for name in strays if not name.endswith(".dist-info")]
    if missing or strays:
        raise CheckFailed(f"the wheel lacks {missing} or ships other packages {strays}")
    step("the wheel has py.typed, migrations, the plugin template and LICENSE")


def install(wheel: Path, venv: Path) -> Path:
    """A new venv with the wheel and its own dependencies, pinned as `make install` pins,
    and pytest (for the last step; it brings no library of an extra)."""
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], ROOT, clean_environment())
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (`--python`): no second pip to set up.
    constraints = str(ROOT / "constraints.txt")
    pip(sys.executable, "--python", str(python), "install", "-c", constraints, str(wheel), "pytest")
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {list(EXTRAS_ONLY)!r} if importlib.util.find_spec(m)]))"
    )
    present = json.loads(run([str(python), "-c", probe], venv, clean_environment()).stdout)
    if present:
        raise CheckFailed(f"the plain install brought libraries only an extra should: {present}")
    step("installed the wheel (and pytest) in a new venv: no extra's library came along")
    return python


def check_served(courtyard: str, home: Path, env: Mapping[str, str]) -> None:
    port = free_port()
    log = home / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [courtyard, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, log)
        step("courtyard serve answers /health/ready 200")
        status, body = request(
            base + "/api/v1/auth/signup",
            {"email": "wheel@example.com", "password": "a long passphrase", "name": "Wheel"},
        )
        if status != 201 or not isinstance(body, dict) or "access_token" not in body:
            raise CheckFailed(f"POST /api/v1/auth/signup answered {status}: {body}")
        token = body["access_token"]
        status, me = request(base + "/api/v1/users/me", token=token)
        if status != 200 or not isinstance(me, dict) or me.get("email") != "wheel@example.com":
            raise CheckFailed(f"GET /api/v1/users/me answered {status}: {me}")
        step("a sign-up answers 201 and its token reads /api/v1/users/me")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if server.returncode != 0:
        raise CheckFailed(f"courtyard serve exited {server.returncode} on SIGTERM:\n{tail(log)}")


def check_missing_extras(courtyard: str, home: Path, env: Mapping[str, str]) -> None:
    provider = {"kind": "github", "client_id": "wheel-check", "client_secret": "not-used"}
    cases = {
        "s3": {"COURTYARD_UPLOAD__BACKEND": "s3", "COURTYARD_UPLOAD__S3_BUCKET": "wheel-check"},
        "oauth": {"COURTYARD_OAUTH__PROVIDERS": json.dumps({"github": provider})},
        "keys": {"COURTYARD_AUTH__JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\n-----END"},
    }
    for extra, settings in cases.items():
        wanted = f"needs the {extra} extra"
        command = f"pip install 'courtyard[{extra}]'"
        configured = {**env, **settings}
        result = run([courtyard, "serve"], home, configured, status=2)
        lines = result.stderr.splitlines()
        if result.stdout or len(lines) != 1 or wanted not in lines[0] or command not in lines[0]:
            raise CheckFailed(
                f"courtyard serve with the {extra} extra missing: expected one line saying "
                f"{wanted!r} and {command!r}, got:\n{result.stderr}{result.stdout}"
            )
        result = run([courtyard, "plugins", "--check"], home, configured, status=1)
        failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
        if len(failures) != 1 or wanted not in failures[0] or command not in failures[0]:
            raise CheckFailed(
                f"courtyard plugins --check with the {extra} extra missing: expected one FAIL "
                f"line naming it, got:\n{result.stdout}{result.stderr}"
            )
        step(f"without the {extra} extra: {lines[0]}")


def check_pytest_without_httpx(python: Path, home: Path, env: Mapping[str, str]) -> None:
    """Installing Courtyard registers its pytest plugin: a pytest run that does not use it
    must pass without the `testing` extra (no httpx, no pytest-asyncio)."""
    suite = home / "suite"
    suite.mkdir()
    (suite / "test_plain.py").write_text("def test_plain() -> None:\n    assert 1 + 1 == 2\n")
    result = run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "test_plain.py"], suite, env
    )
    plugins_line = next((line for line in result.stdout.splitlines() if "plugins:" in line), "")
    if "courtyard" not in plugins_line or "1 passed" not in result.stdout:
        raise CheckFailed(f"pytest did not load the courtyard plugin and pass:\n{result.stdout}")
    step("pytest without httpx loads the courtyard plugin and passes a plain test")


# -- helpers ---------------------------------------------------------------------------


def step(message: str) -> None:
    print(f"wheel-check: ok: {message}", flush=True)


def expect(condition: bool, what: str, result: subprocess.CompletedProcess[str]) -> None:
    if not condition:
        raise CheckFailed(f"{what}: got\n{result.stdout}{result.stderr}")


def clean_environment(**settings: str) -> dict[str, str]:
    """This environment without Courtyard's settings, PYTHONPATH or an active venv: the new
    venv sees only what was installed in it."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COURTYARD_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))
    }
    environ.update(COLUMNS="200", NO_COLOR="1", TERM="dumb", **settings)
    return environ


def run(
    command: Sequence[str], cwd: Path, env: Mapping[str, str], *, status: int = 0
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(command),
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{' '.join(command)} did not end within {STEP_TIMEOUT:.0f} s") from None
    if result.returncode != status:
        raise CheckFailed(
            f"{' '.join(command)} exited {result.returncode}, expected {status}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def pip(python: str | Path, *args: str) -> None:
    command = [str(python), "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    run(command, ROOT, clean_environment())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVE_DEADLINE
    status: int | None = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"courtyard serve exited {server.returncode}:\n{tail(log)}")
        try:
            status, _ = request(base + "/health/ready")
        except OSError:
            status = None
        if status == 200:
            return
        time.sleep(0.2)
    raise CheckFailed(
        f"/health/ready did not answer 200 within {SERVE_DEADLINE:.0f} s (last: {status}):\n"
        f"{tail(log)}"
    )


def request(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """(status, JSON body) of a GET, or of a POST when there is a body."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - local http
    try:
        with urllib.request.urlopen(call, timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
