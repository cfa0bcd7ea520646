"""The container files agree with the code they deploy (no Docker needed).

Every `COURTYARD_*` variable compose.yaml gives a Courtyard container is a setting the
image reads, and `courtyard plugins --check` accepts the whole configuration (as a
container would at start, where a bad one stops it with one line). The ports and paths
that the Dockerfile, compose.yaml and the load balancer's configuration name must be the
same ones, or requests never reach the app; the image runs as a user that is not root and
installs extras the project defines; its build stage gets every file the wheel's build
reads (none kept out by `.dockerignore`, each copied). `make container-check` parses the
same files with docker-compose, hadolint and haproxy; tests/deploy/test_container_run.py
runs the containers' commands.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.plugin import discover
from core.settings import CORE_ENV_PREFIX, CoreSettings, PluginSettings
from tests.deploy import container_files
from tests.deploy.container_files import HAPROXY, ROOT, compose, environment, exec_form, last
from tests.support.courtyard_cli import run_courtyard

DISTRIBUTION = "courtyard"  # what the image installs: the project's own plugins only
VARIABLES = {"COURTYARD_SECRET_KEY": secrets.token_urlsafe(48)}  # what `.env` must give


def courtyard_services() -> dict[str, dict[str, Any]]:
    """The services running the image built from this repository."""
    services: dict[str, dict[str, Any]] = compose(VARIABLES)["services"]
    return {name: service for name, service in services.items() if "build" in service}


def settings_of_the_image() -> dict[str, set[str]]:
    """Field names by plugin for the plugins the image installs, "" for the core's."""
    fields = {"": set(CoreSettings.model_fields)}
    for item in discover():
        if item.distribution != DISTRIBUTION:
            continue
        plugin = item.load()
        settings = (
            plugin.resolve_class(plugin.settings, PluginSettings, "settings")
            if plugin.settings
            else None
        )
        fields[item.name] = set(settings.model_fields) if settings else set()
    return fields


def test_every_courtyard_variable_compose_sets_is_a_setting_of_the_image() -> None:
    known = settings_of_the_image()
    services = courtyard_services()
    assert {"app", "migrate"} <= set(services)
    problems = []
    for name, service in services.items():
        for variable in environment(service):
            if not variable.startswith(CORE_ENV_PREFIX):
                continue
            owner, _, field = variable.removeprefix(CORE_ENV_PREFIX).rpartition("__")
            if owner.lower() not in known:
                problems.append(f"{name}: {variable}: the image has no plugin {owner.lower()!r}")
            elif field.lower() not in known[owner.lower()]:
                problems.append(f"{name}: {variable}: no such setting")
    assert problems == []


def test_courtyard_accepts_the_configuration_compose_gives_it(tmp_path: Path) -> None:
    """What the app's container would check first: values, not only names (the database
    and Redis URLs, the SMTP URL, the forwarded-header peers, the S3 settings, the
    production rules for the secret key)."""
    app = environment(courtyard_services()["app"])
    assert app["COURTYARD_ENV"] == "production"

    result = run_courtyard("plugins", "--check", cwd=tmp_path, env=app)

    assert result.returncode == 0, result.stdout + result.stderr
    reported = result.stdout.splitlines()
    for plugin in settings_of_the_image().keys() - {""}:
        assert any(line.startswith(f"ok  {plugin} ") for line in reported), result.stdout


def test_the_ports_and_paths_of_the_image_compose_and_the_balancer_agree() -> None:
    command = exec_form(last("CMD"))
    assert command[:2] == ["courtyard", "serve"]
    port = command[command.index("--port") + 1]
    assert port in last("EXPOSE").split()

    probe = " ".join(container_files.healthcheck_command())
    assert re.search(rf"http://127\.0\.0\.1:{port}/health/ready\b", probe), probe

    balancer = HAPROXY.read_text()
    assert re.search(rf"^\s*server-template app \d+ app:{port} check", balancer, re.M), balancer
    assert re.search(r"^\s*option httpchk GET /health/ready$", balancer, re.M), balancer
    listens = re.search(r"^\s*bind :(\d+)$", balancer, re.M)
    assert listens, balancer

    services = compose(VARIABLES)["services"]
    published = [str(mapping).rpartition(":")[2] for mapping in services["lb"]["ports"]]
    assert published == [listens.group(1)]
    assert "ports" not in services["app"], "two replicas cannot publish the same host port"

    # The app trusts forwarded headers from the balancer's address, and from nothing else.
    balancer_address = services["lb"]["networks"]["default"]["ipv4_address"]
    trusted = environment(services["app"])["COURTYARD_FORWARDED_ALLOW_IPS"]
    assert trusted == balancer_address
    subnet = compose(VARIABLES)["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(balancer_address) in ipaddress.ip_network(subnet)


def test_the_app_reaches_the_store_by_its_service_and_browsers_by_its_published_port() -> None:
    """Presigned URLs name COURTYARD_UPLOAD__S3_PUBLIC_ENDPOINT_URL: on the Docker host, the
    port `storage` publishes; the app itself talks to the service on the Compose network."""
    services = compose(VARIABLES)["services"]
    app = environment(services["app"])
    internal = urlsplit(app["COURTYARD_UPLOAD__S3_ENDPOINT_URL"])
    public = urlsplit(app["COURTYARD_UPLOAD__S3_PUBLIC_ENDPOINT_URL"])
    # "127.0.0.1:5000:5000": host address, host port, container port.
    published = [str(mapping).split(":") for mapping in services["storage"]["ports"]]

    assert (internal.scheme, internal.hostname) == ("http", "storage")
    assert (public.scheme, public.hostname) == ("http", "localhost")
    assert [("127.0.0.1", str(public.port), str(internal.port))] == [
        tuple(mapping) for mapping in published
    ]
    for job in ("storage-bucket", "migrate"):  # the same settings in every container
        assert environment(services[job]) == environment(services["app"])


def test_the_image_runs_as_a_user_that_is_not_root_and_stops_on_sigterm() -> None:
    user = last("USER").split(":")[0]
    assert user.isdecimal(), "a numeric user lets a platform check it is not root"
    assert int(user) != 0
    assert last("STOPSIGNAL") == "SIGTERM"


def test_the_image_installs_extras_the_project_defines() -> None:
    """pip only warns about an extra the project lacks, and the image would then miss
    what it was meant to bring (aiobotocore for the `s3` upload backend)."""
    default = _extras_argument()
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert default, "the Dockerfile installs no extra"
    assert set(default.split(",")) <= set(defined), f"{default} vs {sorted(defined)}"


def test_the_build_stage_gets_every_file_the_wheel_build_reads() -> None:
    """pyproject.toml's readme and license files, the packages it finds, and the pins the
    build installs with (PIP_CONSTRAINT): each let into the build context by `.dockerignore`
    and copied by the build stage. Without LICENSE, setuptools builds a wheel without the
    license (with a warning that it will refuse to); without constraints.txt, which
    PIP_CONSTRAINT names, pip stops."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    packages = [
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    needed = ["pyproject.toml", "constraints.txt", project["readme"], *project["license-files"]]
    needed += [f"{package}/__init__.py" for package in packages]
    copied = container_files.copied_in_stage(0)

    for relative in needed:
        assert (ROOT / relative).is_file(), relative
        assert not container_files.ignored_by_docker(relative), (
            f".dockerignore keeps out {relative}"
        )
        assert any(relative == source or relative.startswith(f"{source}/") for source in copied), (
            f"the build stage does not copy {relative} (it copies {copied})"
        )
    # What stays out does: the build context is the package source, not the work tree.
    for kept_out in (".env", ".venv/bin/python", "tests/conftest.py", "core/__pycache__/app.pyc"):
        assert container_files.ignored_by_docker(kept_out), kept_out


def _extras_argument() -> str:
    for keyword, arguments in container_files.instructions():
        if keyword == "ARG" and arguments.startswith("EXTRAS="):
            return arguments.removeprefix("EXTRAS=")
    return ""
