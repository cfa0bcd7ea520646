"""The Plugin descriptor, discovery, selection by configuration and ordering.

A plugin is a `Plugin` object named by an entry point in the `courtyard.plugins` group.
The entry point's name must equal the plugin's name: one label reused everywhere (URL
prefix, table prefix, settings prefix, Alembic branch label). Everything a descriptor
points at is a lazy reference ("module:attribute", relative to the plugin's package), so
discovering a plugin imports nothing but its package, and a disabled plugin's models,
routes and hooks are never imported at all. Whether plugins can run together is
`core.validation`'s business.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from core import __version__ as CORE_VERSION
from core.settings import ConfigurationError

ENTRY_POINT_GROUP = "courtyard.plugins"
API_PREFIX = "/api/v1"  # plugins mount their routes at API_PREFIX/<prefix>
T = TypeVar("T")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*")


class PluginError(ConfigurationError):
    """A plugin cannot be loaded or combined with the others; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Plugin:
    """What the core needs to know about a plugin. `package` is the plugin's import name
    (use `__name__` in its `__init__.py`); the other references are resolved inside it.
    """

    name: str
    package: str
    version: str = ""
    requires: tuple[str, ...] = ()
    description: str = ""
    settings: str | None = None  # "settings:NotesSettings", a core.settings.PluginSettings
    container: str | None = None  # "container:NotesContainer", a DeclarativeContainer
    router: str | None = None  # "router:build_router", called with the plugin's container
    prefix: str | None = None  # URL prefix under /api/v1; defaults to `name`
    tag: str | None = None  # OpenAPI tag; defaults to the prefix
    models: str | None = None  # "models", imported to register the plugin's tables
    hooks: str | None = None  # "hooks" (a module) or "hooks:NotesHooks" (a class)
    hookspecs: str | None = None  # "hookspecs", the events this plugin publishes
    migrations: str | None = None  # "migrations/versions", a folder inside the package
    core_version: str | None = None  # the core versions it supports: ">=1,<2" (PEP 440)

    def __post_init__(self) -> None:
        if self.prefix is not None and not _PREFIX.fullmatch(self.prefix):
            raise PluginError(
                f"plugin {self.name!r}: prefix {self.prefix!r} is invalid: use lowercase "
                "letters, digits, '-' and '_', and '/' between segments"
            )
        if not _NAME.fullmatch(self.name):
            raise PluginError(
                f"plugin name {self.name!r} is invalid: use lowercase letters, digits and "
                "underscores, starting with a letter"
            )
        if self.core_version is not None:
            _core_range(self.name, self.core_version)
        object.__setattr__(self, "requires", tuple(self.requires))

    @property
    def url_prefix(self) -> str:
        return self.prefix or self.name

    @property
    def openapi_tag(self) -> str:
        return self.tag or self.url_prefix

    def supports_core(self, version: str = CORE_VERSION) -> bool:
        """Whether core `version` is in the plugin's `core_version` range (pre-releases too)."""
        if self.core_version is None:
            return True
        return _core_range(self.name, self.core_version).contains(version, prereleases=True)

    def check_core_version(self, version: str = CORE_VERSION) -> None:
        """Raise PluginError naming the plugin, its range and `version` when they disagree."""
        if self.core_version is not None and not self.supports_core(version):
            raise PluginError(
                f"plugin {self.name!r} supports core {self.core_version.strip()}, but this is "
                f"core {version} (upgrade the plugin or the core, or disable it)"
            )

    def resolve(self, reference: str) -> Any:
        """Import `module[:attribute]` relative to the plugin's package."""
        module_name, _, attribute = reference.partition(":")
        path = f"{self.package}.{module_name}" if module_name else self.package
        try:
            module = importlib.import_module(path)
            return getattr(module, attribute) if attribute else module
        except Exception as exc:  # a plugin's import-time error is reported, never swallowed
            raise PluginError(
                f"plugin {self.name!r}: cannot load {reference!r} from {self.package}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def resolve_class(self, reference: str, base: type[T], kind: str) -> type[T]:
        """Resolve `reference` to a subclass of `base`; `kind` names it in the error."""
        target = self.resolve(reference)
        if not (isinstance(target, type) and issubclass(target, base)):
            raise PluginError(
                f"plugin {self.name!r}: {kind} {reference!r} is not a "
                f"{base.__module__}.{base.__qualname__} subclass"
            )
        return target

    def migrations_path(self) -> Path | None:
        if self.migrations is None:
            return None
        return Path(str(files(self.package).joinpath(self.migrations)))


def _core_range(name: str, spec: object) -> SpecifierSet:
    """The parsed `core_version` of plugin `name`; PluginError when it is not a range."""
    try:
        if isinstance(spec, str) and spec.strip():
            return SpecifierSet(spec)
    except InvalidSpecifier:
        pass
    raise PluginError(
        f"plugin {name!r}: core_version {spec!r} is not a version range: use PEP 440 "
        "specifiers, e.g. '>=1,<2'"
    )


@dataclass
class InstalledPlugin:
    """One `courtyard.plugins` entry point found on the path, loaded or not."""

    name: str
    distribution: str
    distribution_version: str
    entry_point: importlib_metadata.EntryPoint
    plugin: Plugin | None = None

    @property
    def version(self) -> str:
        return (self.plugin.version if self.plugin else "") or self.distribution_version

    def load(self) -> Plugin:
        if self.plugin is not None:
            return self.plugin
        try:
            loaded = self.entry_point.load()
        except PluginError:
            raise
        except Exception as exc:  # any failure to import is reported, never swallowed
            raise PluginError(
                f"plugin {self.name!r} from distribution {self.distribution!r} failed to import "
                f"({self.entry_point.value}): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(loaded, Plugin):
            raise PluginError(
                f"plugin {self.name!r} from distribution {self.distribution!r}: entry point "
                f"{self.entry_point.value} is a {type(loaded).__name__}, not a core.plugin.Plugin"
            )
        if loaded.name != self.name:
            raise PluginError(
                f"plugin {loaded.name!r} from distribution {self.distribution!r} is registered "
                f"under the entry point name {self.name!r}; the two must be equal"
            )
        self.plugin = loaded
        return loaded


def discover() -> list[InstalledPlugin]:
    """Every `courtyard.plugins` entry point on the path, sorted by name; nothing imported."""
    found: list[InstalledPlugin] = []
    seen: dict[tuple[str, str], InstalledPlugin] = {}
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        dist_version = dist.version if dist is not None else ""
        key = (ep.name, ep.value)
        if key in seen and seen[key].distribution == dist_name:
            continue  # the same distribution reachable twice on the path
        item = InstalledPlugin(ep.name, dist_name, dist_version, ep)
        seen[key] = item
        found.append(item)
    return sorted(found, key=lambda p: (p.name, p.distribution))


def enabled_names(
    installed: Iterable[str], enabled: Sequence[str] | None, disabled: Sequence[str]
) -> list[str]:
    """The plugins configuration enables, by name: every installed one unless
    COURTYARD_ENABLED_PLUGINS lists some, less those COURTYARD_DISABLED_PLUGINS lists.

    Raises PluginError when either setting names a plugin that is not installed.
    """
    names = set(installed)
    if enabled is not None:
        _check_known(enabled, names, "COURTYARD_ENABLED_PLUGINS")
    _check_known(disabled, names, "COURTYARD_DISABLED_PLUGINS")
    allowed = names if enabled is None else set(enabled)
    return sorted(allowed - set(disabled))


def _check_known(names: Iterable[str], installed: set[str], setting: str) -> None:
    unknown = sorted(set(names) - installed)
    if unknown:
        available = ", ".join(sorted(installed)) or "none"
        raise PluginError(
            f"{setting} names unknown plugin(s) {', '.join(map(repr, unknown))}; "
            f"installed plugins: {available}"
        )


def order_plugins(plugins: Iterable[Plugin]) -> list[Plugin]:
    """Topological order by `requires`, ties broken by name; a cycle is an error.

    Every plugin required must be among `plugins` (core.validation checks that first).
    """
    pending = {p.name: p for p in plugins}
    ordered: list[Plugin] = []
    done: set[str] = set()
    while pending:
        ready = sorted(n for n, p in pending.items() if all(r in done for r in p.requires))
        if not ready:
            raise PluginError(_unorderable(pending, done))
        name = ready[0]
        ordered.append(pending.pop(name))
        done.add(name)
    return ordered


def _unorderable(pending: Mapping[str, Plugin], done: set[str]) -> str:
    for name in sorted(pending):
        cycle = find_cycle(name, pending)
        if cycle:
            return f"dependency cycle between plugins: {' -> '.join(cycle)}"
    name, required = min(
        (p.name, r)
        for p in pending.values()
        for r in p.requires
        if r not in pending and r not in done
    )
    return f"plugin {name!r} requires {required!r}, which is not among the plugins to order"


def find_cycle(start: str, plugins: Mapping[str, Plugin]) -> list[str] | None:
    """A path `start` -> … -> `start` along `requires` within `plugins`, if there is one
    (depth first, requirements in name order)."""
    seen: set[str] = set()

    def visit(path: list[str]) -> list[str] | None:
        for required in sorted(plugins[path[-1]].requires):
            if required == start:
                return [*path, start]
            if required in plugins and required not in seen:
                seen.add(required)
                found = visit([*path, required])
                if found:
                    return found
        return None

    return visit([start]) if start in plugins else None
