"""Reject configuration nobody reads: a misspelt setting must not be silently ignored.

Checked (by core.validation) once the enabled plugins are known: top-level keys of
`courtyard.toml` and `COURTYARD_<FIELD>` names must be core settings; a `[table]` must
name an installed plugin; keys and `COURTYARD_<NAME>__<FIELD>` names of an *enabled*
plugin must be its settings. Names for plugins that are not installed or are disabled are
left alone, so one environment can serve deployments with different plugin sets.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from core.settings import CORE_ENV_PREFIX, CoreSettings

# Read by the core or its tests, not settings fields.
_IGNORED_ENV = ("TEST_", "CONFIG_FILE")


def unknown_settings(
    core: CoreSettings,
    installed: Collection[str],
    enabled: Mapping[str, type[BaseSettings] | None],
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str | None, str]]:
    """Every setting no enabled component reads: (owner, message) pairs, the owner being
    the plugin the setting is addressed to, or None for the core's own settings."""
    problems = _toml_problems(core, installed, enabled)
    sources: list[tuple[str, Iterable[str]]] = [
        ("the environment", (os.environ if environ is None else environ).keys())
    ]
    if core.env_file and Path(core.env_file).is_file():
        sources.append((core.env_file, dotenv_values(core.env_file).keys()))
    for where, names in sources:
        for name in names:
            found = _env_problem(name, installed, enabled)
            if found:
                owner, problem = found
                problems.append((owner, f"{problem} (in {where})"))
    return problems


def _fields(settings_cls: type[BaseSettings] | None) -> set[str]:
    return set(settings_cls.model_fields) if settings_cls is not None else set()


def _toml_problems(
    core: CoreSettings, installed: Collection[str], enabled: Mapping[str, type[BaseSettings] | None]
) -> list[tuple[str | None, str]]:
    document = core.toml_document
    where = core.config_file or "courtyard.toml"
    core_fields = _fields(CoreSettings)
    problems: list[tuple[str | None, str]] = []
    for key, value in document.items():
        if not isinstance(value, dict):
            if key not in core_fields:
                problems.append((None, f"{where}: unknown setting {key!r}"))
            continue
        if key not in installed:
            problems.append((None, f"{where}: table [{key}] names no installed plugin"))
        elif key in enabled:
            known = _fields(enabled[key])
            problems += [
                (key, f"{where}: unknown setting {field!r} in [{key}]")
                for field in value
                if field not in known
            ]
    return problems


def _env_problem(
    name: str, installed: Collection[str], enabled: Mapping[str, type[BaseSettings] | None]
) -> tuple[str | None, str] | None:
    upper = name.upper()
    if not upper.startswith(CORE_ENV_PREFIX):
        return None
    rest = upper.removeprefix(CORE_ENV_PREFIX)
    if rest.startswith(_IGNORED_ENV):
        return None
    if "__" in rest:
        plugin, _, field = rest.partition("__")
        plugin = plugin.lower()
        if plugin not in enabled:
            return None  # not installed, or disabled: nothing reads it
        if field.lower() not in _fields(enabled[plugin]):
            return plugin, (
                f"unknown setting {name}: plugin {plugin!r} has no setting {field.lower()!r}"
            )
        return None
    if rest.lower() not in _fields(CoreSettings):
        return None, f"unknown setting {name}: the core has no setting {rest.lower()!r}"
    return None
