"""`courtyard plugins --check`: validate every installed plugin without starting the server.

Each installed plugin, enabled or not, is checked on its own against the current
configuration: its entry point loads (and names the plugin it registers), its
`core_version` range admits the running core, the plugins it requires are installed and
form no cycle, its settings class resolves and its current settings validate, its
container, router, models and hook references resolve, its hook implementations match
their specs (the core's and those every installed plugin publishes), and its migrations
folder exists. Every problem is one line; nothing is served, no database is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import pluggy
from dependency_injector import containers, providers
from fastapi import APIRouter

from core import hooks
from core.app import API_PREFIX
from core.plugin import InstalledPlugin, Plugin, PluginError, discover
from core.settings import ConfigurationError, CoreSettings, PluginSettings, load_plugin_settings
from core.settings_check import check_unknown_settings

# What the core offers a plugin's container besides the containers of the plugins it requires.
CORE_PROVIDED = frozenset({"settings", "core_settings", "database", "hooks"})


@dataclass
class PluginReport:
    """The outcome for one installed plugin: no problems means it is fine."""

    name: str
    version: str
    distribution: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Installed:
    """Everything installed, loaded once: what each plugin is checked against."""

    items: list[InstalledPlugin]
    plugins: dict[str, Plugin]  # the ones that load, by name

    @property
    def names(self) -> set[str]:
        return {item.name for item in self.items}


def check_plugins(
    settings: CoreSettings, installed: Sequence[InstalledPlugin] | None = None
) -> list[PluginReport]:
    """One report per installed plugin name, in name order.

    Raises ConfigurationError when the configuration itself (not one plugin's part of it)
    is wrong, e.g. an unknown core setting: no plugin is to blame for that.
    """
    items = discover() if installed is None else list(installed)
    check_unknown_settings(settings, {item.name for item in items}, {})
    by_name: dict[str, list[InstalledPlugin]] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item)
    loaded: dict[str, Plugin] = {}  # (of a duplicate, the first: the others' context)
    for name, same in by_name.items():
        with suppress(PluginError):
            loaded[name] = same[0].load()
    context = _Installed(items, loaded)
    return [
        _check(same[0], context, settings) if len(same) == 1 else _duplicate(same)
        for same in by_name.values()
    ]


def _duplicate(same: Sequence[InstalledPlugin]) -> PluginReport:
    providers = ", ".join(f"{i.distribution!r} ({i.entry_point.value})" for i in same)
    return PluginReport(
        same[0].name,
        "",
        ", ".join(i.distribution for i in same),
        [f"the name is registered by more than one distribution: {providers}; keep one"],
    )


def _check(item: InstalledPlugin, installed: _Installed, settings: CoreSettings) -> PluginReport:
    report = PluginReport(item.name, item.version, item.distribution)
    try:
        plugin = item.load()
    except PluginError as exc:
        report.problems.append(_reason(item.name, str(exc)))
        return report
    for check in _CHECKS:
        try:
            problems = check(plugin, installed, settings)
        except ConfigurationError as exc:  # PluginError included
            problems = [str(exc)]
        except Exception as exc:  # a plugin's fault is a line in the report, never a crash
            problems = [f"{check.__name__.strip('_')} check failed: {type(exc).__name__}: {exc}"]
        report.problems += [_reason(plugin.name, p) for p in problems]
    return report


def _reason(name: str, message: str) -> str:
    """`message` without a leading "plugin 'name'", which the report line already says."""
    for prefix in (f"plugin {name!r}: ", f"plugin {name!r} "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message


# The checks: each returns its problems, or raises ConfigurationError for a single one.


def _compatibility(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    plugin.check_core_version()
    return []


def _requirements(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    problems = []
    for required in plugin.requires:
        if required not in installed.names:
            problems.append(f"requires {required!r}, which is not installed")
        elif required not in installed.plugins:
            problems.append(f"requires {required!r}, which fails to load (see its line)")
    cycle = _cycle_through(plugin.name, installed.plugins)
    if cycle:
        problems.append(f"dependency cycle between plugins: {' -> '.join(cycle)}")
    return problems


def _cycle_through(start: str, plugins: Mapping[str, Plugin]) -> list[str] | None:
    """A path start -> … -> start along `requires`, if there is one (depth first, by name)."""
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


def _settings(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    settings_cls = (
        plugin.resolve_class(plugin.settings, PluginSettings, "settings")
        if plugin.settings is not None
        else None
    )
    check_unknown_settings(settings, installed.names, {plugin.name: settings_cls})
    if settings_cls is not None:
        load_plugin_settings(settings_cls, plugin.name, settings)
    return []


def _container(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    if plugin.container is None:
        return []
    container_cls = plugin.resolve_class(plugin.container, containers.Container, "container")
    offered = CORE_PROVIDED | set(plugin.requires)
    problems = []
    for name, provider in sorted(container_cls.providers.items()):
        if name in offered:
            continue
        if isinstance(provider, providers.DependenciesContainer):
            problems.append(
                f"container {plugin.container!r} expects the container of plugin {name!r}, "
                "which it does not require"
            )
        elif isinstance(provider, providers.Dependency) and not provider.is_defined:
            problems.append(
                f"container {plugin.container!r} declares dependency {name!r}, which the core "
                f"does not provide (it provides {', '.join(sorted(CORE_PROVIDED))} and the "
                "containers of required plugins)"
            )
    return problems


def _router(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    if plugin.router is None:
        return []
    target = plugin.resolve(plugin.router)
    if isinstance(target, APIRouter) or callable(target):
        return []
    return [f"router {plugin.router!r} is neither an APIRouter nor a function building one"]


def _mount(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    """Two routers at one URL prefix cannot be enabled together; the plugin whose prefix is
    another plugin's name is the one at fault (a prefix defaults to the plugin's name)."""
    if plugin.router is None or plugin.url_prefix == plugin.name:
        return []
    owners = sorted(
        other.name
        for other in installed.plugins.values()
        if other.name != plugin.name and other.router and other.url_prefix == plugin.url_prefix
    )
    return [
        f"mounts its routes at {API_PREFIX}/{plugin.url_prefix}, as plugin {owner!r} does "
        "(the two cannot be enabled together)"
        for owner in owners
    ]


def _models(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    if plugin.models is not None:
        plugin.resolve(plugin.models)
    return []


def _hooks(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    """Validate the hook implementations the way startup registers them, without a container.

    A hooks class is registered as the class itself: its methods are checked against the
    specs exactly as those of an instance would be.
    """
    pm = hooks.new_plugin_manager()
    for other in installed.plugins.values():
        if other.name != plugin.name:
            with suppress(PluginError):  # a clash between others is reported under their names
                hooks.add_plugin_hookspecs(pm, other)
    hooks.add_plugin_hookspecs(pm, plugin)
    if plugin.hooks is None:
        return []
    try:
        pm.register(plugin.resolve(plugin.hooks), name=plugin.name)
    except pluggy.PluginValidationError as exc:
        return [f"has an invalid hook implementation: {exc}"]
    return _undeclared(pm)


def _undeclared(pm: pluggy.PluginManager) -> list[str]:
    problems = []
    for name, caller in sorted(pm.hook.__dict__.items()):
        if name.startswith("_") or caller.has_spec():
            continue
        if any(not impl.optionalhook for impl in caller.get_hookimpls()):
            problems.append(
                f"implements hook {name!r}, which no installed plugin declares (mark the "
                "implementation @hookimpl(optionalhook=True) if that is intended)"
            )
    return problems


def _migrations(plugin: Plugin, installed: _Installed, settings: CoreSettings) -> list[str]:
    try:
        path = plugin.migrations_path()
    except (ImportError, TypeError) as exc:
        return [f"migrations folder {plugin.migrations!r}: {type(exc).__name__}: {exc}"]
    if path is None or path.is_dir():
        return []
    return [f"migrations folder {plugin.migrations!r} does not exist in {plugin.package}"]


_Check = Callable[[Plugin, _Installed, CoreSettings], list[str]]
_CHECKS: Collection[_Check] = (
    _compatibility,
    _requirements,
    _settings,
    _container,
    _router,
    _mount,
    _models,
    _hooks,
    _migrations,
)
