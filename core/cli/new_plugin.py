"""`courtyard new-plugin NAME [--path DIR]`: a complete, installable, tested plugin project.

The project is rendered from `plugin_template/` (files ending in `.tmpl`, `${...}`
placeholders; `__package__`, `__name__` and `__revision__` in paths). Right after
generation, with no edits: `pip install -e DIR` makes `courtyard plugins` list it,
`courtyard db upgrade` creates its table, its routes answer, and `pytest` in DIR passes.
The command prints those steps with the path of the Python running it, so they need no
activated virtual environment.
"""

from __future__ import annotations

import keyword
import secrets
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from core import __version__
from core.plugin import Plugin, PluginError, discover
from core.settings import ConfigurationError

TEMPLATE = Path(__file__).resolve().parent / "plugin_template"
RESERVED = frozenset({"serve", "plugins", "db", "new-plugin", "core", "api"})


def new_plugin_command(
    name: Annotated[str, typer.Argument(help="The plugin's name: lowercase, e.g. `notes`.")],
    path: Annotated[
        Path | None,
        typer.Option(help="Folder to create (must be empty or absent). Default: ./courtyard-NAME"),
    ] = None,
) -> None:
    """Generate a new plugin project: descriptor, model, migration, routes, tests, README."""
    _check_name(name)
    target = path if path is not None else Path.cwd() / f"courtyard-{name.replace('_', '-')}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"{target} already exists and is not an empty folder")
    files = render(name, target)
    typer.echo(f"created plugin {name!r} in {target} ({len(files)} files). Next:")
    for command in next_steps(name, target):
        typer.echo(f"  {command}")


def next_steps(name: str, target: Path) -> list[str]:
    """Shell commands that install, list, migrate and test the new plugin, with the Python
    running this command: they work whether or not its environment is activated."""
    python = shlex.quote(sys.executable)
    project = shlex.quote(str(target.resolve()))
    courtyard = f"{python} -m core.cli"  # what `courtyard` runs, in this environment
    return [
        f"{python} -m pip install -e {project}",
        f"{courtyard} plugins     # lists {name!r}",
        f"{courtyard} db upgrade  # creates its table",
        f"cd {project} && {python} -m pytest",
    ]


def _valid(name: str) -> bool:
    try:
        Plugin(name=name, package=f"courtyard_{name}")  # the descriptor's own name rule
    except PluginError:
        return False
    return not keyword.iskeyword(name)


def _check_name(name: str) -> None:
    if not _valid(name):
        raise ConfigurationError(
            f"{name!r} is not a valid plugin name: use lowercase letters, digits and "
            "underscores, starting with a letter (at most 31 characters)"
        )
    if name in RESERVED:
        raise ConfigurationError(f"{name!r} is reserved by the core; choose another name")
    try:
        installed = {item.name: item for item in discover()}
    except PluginError as exc:  # two distributions claim one name: report, do not guess
        raise ConfigurationError(str(exc)) from None
    if name in installed:
        raise ConfigurationError(
            f"a plugin named {name!r} is already installed (distribution "
            f"{installed[name].distribution!r}); choose another name"
        )


def placeholders(name: str) -> dict[str, str]:
    words = name.split("_")
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return {
        "name": name,
        "upper": name.upper(),
        "cls": "".join(w.capitalize() for w in words),
        "title": " ".join(words).capitalize(),
        "package": f"courtyard_{name}",
        "dist": f"courtyard-{name.replace('_', '-')}",
        "prefix": name.replace("_", "")[:16],
        "revision": secrets.token_hex(6),
        "date": datetime.now(UTC).date().isoformat(),
        "core_version": f">={major}.{minor},<{major + 1}",
    }


def render(name: str, target: Path) -> list[Path]:
    """Write the project for plugin `name` into `target`; the files written."""
    values = placeholders(name)
    renames = {
        "__package__": values["package"],
        "__name__": name,
        "__revision__": values["revision"],
    }
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = str(source.relative_to(TEMPLATE).with_suffix(""))
        for marker, value in renames.items():
            relative = relative.replace(marker, value)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = Template(source.read_text(encoding="utf-8")).substitute(values)
        destination.write_text(text, encoding="utf-8")
        written.append(destination)
    return written
