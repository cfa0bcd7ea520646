"""The container files read as Docker and Compose read them, for tests that cannot run Docker.

`Dockerfile`: its instructions, continuation lines joined and comments dropped, the
exec-form commands of CMD and HEALTHCHECK, and what a stage copies from the build context.
`.dockerignore`: whether it keeps a path out of the context, by Docker's own Python SDK's
matching. `compose.yaml`: its services, with `${NAME}`,
`${NAME:-default}` and `${NAME:?message}` filled in from given variables, as Compose fills
them in from the shell and `.env`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from docker.utils.build import PatternMatcher

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<operator>:-|:\?)(?P<argument>[^}]*))?\})")


class MissingVariable(Exception):
    """A `${NAME:?message}` whose variable is unset or empty: Compose refuses the file."""


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction of a Dockerfile, in order."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continued instruction, as Docker reads it
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def last(keyword: str, path: Path = DOCKERFILE) -> str:
    """The arguments of the last `keyword` instruction: the one that counts for CMD,
    HEALTHCHECK and STOPSIGNAL."""
    matches = [arguments for name, arguments in instructions(path) if name == keyword]
    assert matches, f"{path.name} has no {keyword}"
    return matches[-1]


def exec_form(text: str) -> list[str]:
    """A JSON array command (`["courtyard", "serve"]`), as Docker runs it without a shell."""
    command = json.loads(text)
    assert isinstance(command, list), f"not an exec-form command: {text}"
    assert all(isinstance(part, str) for part in command)
    return command


def healthcheck_command(path: Path = DOCKERFILE) -> list[str]:
    """The command of the HEALTHCHECK instruction (its options left out)."""
    _, marker, command = last("HEALTHCHECK", path).partition("CMD ")
    assert marker, "HEALTHCHECK has no CMD"
    return exec_form(command)


def copied_in_stage(stage: int, path: Path = DOCKERFILE) -> list[str]:
    """The build-context paths the COPY instructions of the `stage`-th FROM (from 0) copy
    (COPY --from=… copies from another stage, not the context, and is left out)."""
    stages: list[list[str]] = []
    for keyword, arguments in instructions(path):
        if keyword == "FROM":
            stages.append([])
        elif keyword == "COPY" and stages:
            words = arguments.split()
            if any(word.startswith("--from=") for word in words):
                continue
            sources = [word for word in words if not word.startswith("--")][:-1]
            stages[-1].extend(source.rstrip("/") for source in sources)
    return stages[stage]


def ignored_by_docker(relative: str, path: Path = DOCKERIGNORE) -> bool:
    """Whether `.dockerignore` keeps `relative` (a path in the build context) out of it,
    with its lines read as `docker build` reads them (blank lines and comments dropped)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    return bool(PatternMatcher(patterns).matches(relative))


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """`value` with its variables filled in; MissingVariable for a required one."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group("name", "operator", "argument")
        given = variables.get(name, "")
        if given:
            return given
        if operator == ":?":
            raise MissingVariable(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return _VARIABLE.sub(replace, value)


def _filled(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, dict):
        return {key: _filled(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_filled(item, variables) for item in node]
    return node


def compose(variables: Mapping[str, str], path: Path = COMPOSE) -> dict[str, Any]:
    """compose.yaml as Compose sees it with `variables` (anchors and merges resolved)."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    filled: dict[str, Any] = _filled(document, variables)
    return filled


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, as the strings its process gets."""
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    return {name: str(value) for name, value in given.items()}
