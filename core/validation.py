"""Plugin validation: one pass that finds every problem with plugins meant to run together.

`validate()` checks installed plugins against the configuration and against each other
and returns every problem it finds, each one line naming the plugin at fault and what is
wrong with it. It has three callers, so there is one set of rules:

- startup (`Kernel.build`) validates the enabled plugins and raises the first problem;
- `courtyard plugins --check` validates every installed plugin, enabled or not, and
  prints every problem;
- `core.testing.assert_plugin_conforms` validates a plugin with the plugins it requires,
  before the contract checks of its own.

The checks, in the order their problems are listed: a plugin name is registered once; the
entry point loads a `Plugin` of its own name; its `core_version` admits this core; the
plugins it requires are there and form no cycle; its settings class resolves, nothing in
the configuration addresses a setting it does not have, and its settings load; the hooks
it declares are new; its container's inputs are ones the core can give; its hook
implementations match their specs and implement only declared hooks; no two routers share
a URL prefix. With `references=True` (what startup resolves only later, or never): its
router, models and migrations folder resolve too.

Nothing is served, no database is touched and no plugin code runs beyond imports: a
hooks class is checked as a class, without being instantiated.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dependency_injector import containers, providers
from fastapi import APIRouter

from core import hooks
from core.container import published_providers
from core.plugin import API_PREFIX, InstalledPlugin, Plugin, PluginError, find_cycle
from core.settings import ConfigurationError, CoreSettings, PluginSettings, load_plugin_settings
from core.settings_check import unknown_settings

# What the core gives a plugin's container; a required plugin's providers come as
# `<plugin>_<provider>` (see core.container).
CORE_PROVIDED = ("core_settings", "database", "hooks", "settings")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, in one line that names the plugin at fault.

    `plugin` is the installed plugin's (entry point) name, or None for configuration that
    is the core's own (an unknown core setting).
    """

    plugin: str | None
    message: str
    error: ConfigurationError | None = field(default=None, compare=False, repr=False)

    @property
    def reason(self) -> str:
        """The message without its leading "plugin 'name'", for a line naming it already."""
        if self.plugin is not None:
            for prefix in (f"plugin {self.plugin!r}: ", f"plugin {self.plugin!r} "):
                if self.message.startswith(prefix):
                    return self.message.removeprefix(prefix)
        return self.message

    def exception(self) -> ConfigurationError:
        """The error to raise: the one the check caught (its type and cause kept), or a
        PluginError."""
        return self.error if self.error is not None else PluginError(self.message)


@dataclass
class Validation:
    """The outcome: the problems, and what was loaded on the way (for startup to use)."""

    installed: dict[str, InstalledPlugin]  # by name (of a name registered twice, the first)
    plugins: dict[str, Plugin]  # the validated plugins that load, by name
    settings: dict[str, PluginSettings]  # their settings, where they declare and load some
    problems: list[Problem]

    def raise_first(self) -> None:
        """Raise the first problem (a ConfigurationError, naming the plugin), if any."""
        if self.problems:
            raise self.problems[0].exception()

    def problems_of(self, name: str) -> list[Problem]:
        return [p for p in self.problems if p.plugin == name]


def validate(
    installed: Sequence[InstalledPlugin],
    settings: CoreSettings,
    *,
    enabled: Collection[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    references: bool = False,
) -> Validation:
    """Every problem with the `enabled` plugins (names of installed plugins), run together.

    `enabled=None` validates every installed plugin, as `courtyard plugins --check` does:
    messages then speak of installed plugins rather than enabled ones. `overrides` are
    settings per plugin name, as `Kernel.build` takes them.
    """
    run = _Run(installed, settings, enabled, overrides or {})
    checks: list[Callable[[], None]] = [
        run.duplicates,
        run.load,
        run.core_versions,
        run.requirements,
        run.cycles,
        run.plugin_settings,
        run.hookspecs,
        run.containers,
        run.hook_implementations,
        run.mounts,
    ]
    if references:
        checks += [run.routers, run.models, run.migrations]
    for check in checks:
        check()
    return Validation(
        {name: same[0] for name, same in run.by_name.items()},
        run.plugins,
        run.loaded_settings,
        run.problems,
    )


class _Run:
    """One validation: the checks share what the earlier ones loaded."""

    def __init__(
        self,
        installed: Sequence[InstalledPlugin],
        settings: CoreSettings,
        enabled: Collection[str] | None,
        overrides: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.settings = settings
        self.overrides = overrides
        self.by_name: dict[str, list[InstalledPlugin]] = {}
        for item in sorted(installed, key=lambda i: i.name):
            self.by_name.setdefault(item.name, []).append(item)
        self.every = enabled is None
        self.scope = "installed" if self.every else "enabled"
        self.wanted = sorted(self.by_name if enabled is None else set(enabled))
        self.plugins: dict[str, Plugin] = {}
        self.unloadable: set[str] = set()
        self.settings_classes: dict[str, type[PluginSettings] | None] = {}
        self.loaded_settings: dict[str, PluginSettings] = {}
        self.pm = hooks.new_plugin_manager()
        self.without_specs: set[str] = set()  # plugins whose hookspecs were refused
        self.problems: list[Problem] = []

    def add(
        self, plugin: str | None, message: str, error: ConfigurationError | None = None
    ) -> None:
        self.problems.append(Problem(plugin, message, error))

    def attempt(self, plugin: str, action: Callable[[], Any]) -> Any:
        """`action()`, or None with its ConfigurationError recorded as `plugin`'s problem."""
        try:
            return action()
        except ConfigurationError as exc:  # PluginError included
            self.add(plugin, str(exc), exc)
            return None

    # -- the checks, in order ----------------------------------------------------------

    def duplicates(self) -> None:
        for name, same in self.by_name.items():
            if len(same) > 1:
                sources = [f"{i.distribution!r} ({i.entry_point.value})" for i in same]
                self.add(
                    name,
                    f"duplicate plugin name {name!r}: provided by distributions "
                    f"{', '.join(sources[:-1])} and {sources[-1]}",
                )

    def load(self) -> None:
        for name in self.wanted:
            plugin = self.attempt(name, self.by_name[name][0].load)
            if plugin is None:
                self.unloadable.add(name)
            else:
                self.plugins[name] = plugin

    def core_versions(self) -> None:
        for plugin in self.plugins.values():
            self.attempt(plugin.name, plugin.check_core_version)

    def requirements(self) -> None:
        for plugin in self.plugins.values():
            for required in plugin.requires:
                if required in self.plugins:
                    continue
                if required not in self.by_name:
                    why = "is not installed"
                elif required in self.unloadable:
                    why = "fails to load (see its own problem)"
                else:
                    why = "is disabled (see COURTYARD_ENABLED_PLUGINS / COURTYARD_DISABLED_PLUGINS)"
                self.add(plugin.name, f"plugin {plugin.name!r} requires {required!r}, which {why}")

    def cycles(self) -> None:
        for name in self.plugins:
            cycle = find_cycle(name, self.plugins)
            if cycle:
                self.add(name, f"dependency cycle between plugins: {' -> '.join(cycle)}")

    def plugin_settings(self) -> None:
        for plugin in self.plugins.values():
            if plugin.settings is None:
                self.settings_classes[plugin.name] = None
                continue
            settings_cls = self.attempt(
                plugin.name,
                partial(plugin.resolve_class, plugin.settings, PluginSettings, "settings"),
            )
            if settings_cls is not None:
                self.settings_classes[plugin.name] = settings_cls
        for owner, message in unknown_settings(self.settings, self.by_name, self.settings_classes):
            self.add(owner, message)
        for name, settings_cls in self.settings_classes.items():
            given = self.overrides.get(name)
            if settings_cls is None:
                if given is not None:
                    self.add(name, f"plugin {name!r} has no settings to override")
                continue
            loaded = self.attempt(
                name, partial(load_plugin_settings, settings_cls, name, self.settings, given)
            )
            if loaded is not None:
                self.loaded_settings[name] = loaded

    def hookspecs(self) -> None:
        for plugin in self.plugins.values():
            try:
                hooks.add_plugin_hookspecs(self.pm, plugin)
            except PluginError as exc:
                self.add(plugin.name, str(exc), exc)
                self.without_specs.add(plugin.name)

    def containers(self) -> None:
        classes: dict[str, type[containers.Container]] = {}
        broken: set[str] = set()
        for plugin in self.plugins.values():
            if plugin.container is not None:
                container_cls = self.attempt(
                    plugin.name,
                    partial(
                        plugin.resolve_class, plugin.container, containers.Container, "container"
                    ),
                )
                if container_cls is None:
                    broken.add(plugin.name)
                else:
                    classes[plugin.name] = container_cls
        for name, container_cls in classes.items():
            problems = _container_problems(
                self.plugins[name], container_cls, classes, broken, set(self.by_name)
            )
            for message in problems:
                self.add(name, f"plugin {name!r} container: {message}")

    def hook_implementations(self) -> None:
        for plugin in self.plugins.values():
            if plugin.hooks is None or plugin.name in self.without_specs:
                continue  # without its own hookspecs, its implementations of them would be
                # reported as undeclared: the refused hookspecs are the problem to report
            target = self.attempt(plugin.name, partial(plugin.resolve, plugin.hooks))
            if target is not None:
                self.attempt(plugin.name, partial(hooks.register, self.pm, plugin, target))
        advice = "enable" if not self.every else "install"
        for name, hook in hooks.undeclared_hooks(self.pm):
            self.add(
                name,
                f"plugin {name!r} implements hook {hook!r}, which no {self.scope} plugin "
                f"declares ({advice} the plugin that declares it, or mark the implementation "
                "@hookimpl(optionalhook=True))",
            )

    def mounts(self) -> None:
        """Two routers at one URL prefix cannot run together. The plugin whose prefix is
        another plugin's name is the one at fault (a prefix defaults to the plugin's name)."""
        by_prefix: dict[str, list[Plugin]] = {}
        for plugin in self.plugins.values():
            if plugin.router is not None:
                by_prefix.setdefault(plugin.url_prefix, []).append(plugin)
        for prefix, sharing in by_prefix.items():
            for plugin in sharing:
                if plugin.name == prefix:
                    continue
                for other in sharing:
                    if other is not plugin:
                        first, second = sorted((plugin.name, other.name))
                        self.add(
                            plugin.name,
                            f"plugins {first!r} and {second!r} both mount routes at "
                            f"{API_PREFIX}/{prefix}",
                        )

    # -- references startup resolves later ---------------------------------------------

    def routers(self) -> None:
        for plugin in self.plugins.values():
            if plugin.router is None:
                continue
            target = self.attempt(plugin.name, partial(plugin.resolve, plugin.router))
            if target is not None and not (isinstance(target, APIRouter) or callable(target)):
                self.add(
                    plugin.name,
                    f"plugin {plugin.name!r}: router {plugin.router!r} is neither an "
                    "APIRouter nor a function building one",
                )

    def models(self) -> None:
        for plugin in self.plugins.values():
            if plugin.models is not None:
                self.attempt(plugin.name, partial(plugin.resolve, plugin.models))

    def migrations(self) -> None:
        for plugin in self.plugins.values():
            try:
                path = plugin.migrations_path()
            except (ImportError, TypeError) as exc:
                self.add(
                    plugin.name,
                    f"plugin {plugin.name!r}: migrations folder {plugin.migrations!r}: "
                    f"{type(exc).__name__}: {exc}",
                )
                continue
            if path is not None and not path.is_dir():
                self.add(
                    plugin.name,
                    f"plugin {plugin.name!r}: migrations folder {plugin.migrations!r} does not "
                    f"exist in {plugin.package}",
                )


def _container_problems(
    plugin: Plugin,
    container_cls: type[containers.Container],
    classes: Mapping[str, type[containers.Container]],
    broken: Collection[str],
    installed: Collection[str],
) -> list[str]:
    """What `plugin`'s container asks for that composing it (core.container) cannot give."""
    declared: Mapping[str, Any] = container_cls.providers
    offered = set(CORE_PROVIDED)
    problems = []
    for required in plugin.requires:
        if isinstance(declared.get(required), providers.DependenciesContainer):
            problems.append(
                f"declares all of plugin {required!r}'s container ({required} = "
                "providers.DependenciesContainer()); declare each provider it uses as an "
                f"input instead, e.g. {required}_service = providers.Dependency()"
            )
        prefix = f"{required}_"
        if required in classes:
            offered |= {f"{prefix}{name}" for name in published_providers(classes[required])}
        elif required in broken:  # its own problem: do not blame the plugins using it
            offered |= {name for name in declared if name.startswith(prefix)}
    for name, provider in sorted(declared.items()):
        if name in offered:
            continue
        if isinstance(provider, providers.DependenciesContainer):
            if name not in plugin.requires:  # a required one is reported above
                problems.append(
                    f"declares the container of plugin {name!r}, which it does not require"
                )
        elif isinstance(provider, providers.Dependency) and not provider.is_defined:
            problems.append(_unknown_input(plugin, name, classes, installed))
    return problems


def _unknown_input(
    plugin: Plugin,
    name: str,
    classes: Mapping[str, type[containers.Container]],
    installed: Collection[str],
) -> str:
    owner = max((p for p in installed if name.startswith(f"{p}_")), key=len, default=None)
    if owner is not None and owner not in plugin.requires:
        return (
            f"declares dependency {name!r}, a provider of plugin {owner!r}, which it does "
            f"not require (add {owner!r} to requires)"
        )
    if owner is not None and owner in classes:
        published = ", ".join(sorted(published_providers(classes[owner]))) or "nothing"
        return (
            f"declares dependency {name!r}, which plugin {owner!r} does not publish "
            f"(it publishes: {published})"
        )
    return (
        f"declares dependency {name!r}, which the core does not provide (it provides "
        f"{', '.join(CORE_PROVIDED)}, and what a required plugin publishes as "
        "<plugin>_<provider>)"
    )
