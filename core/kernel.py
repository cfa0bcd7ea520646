"""The Kernel: everything built from configuration, shared by the app and the CLI.

discover → filter by configuration → validate → order → settings → hooks → containers.
Every failure is a ConfigurationError whose message is one line naming what is at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from core import hooks
from core.container import RootContainer, compose, plugin_container
from core.hookspecs import ReadinessCheck
from core.plugin import InstalledPlugin, Plugin, PluginError, discover, select_plugins
from core.settings import CoreSettings, PluginSettings, load_plugin_settings
from core.settings_check import check_unknown_settings


@dataclass
class Kernel:
    settings: CoreSettings
    installed: dict[str, InstalledPlugin]
    plugins: list[Plugin]
    plugin_settings: dict[str, PluginSettings]
    pm: pluggy.PluginManager
    container: RootContainer

    @classmethod
    def build(
        cls,
        settings: CoreSettings | None = None,
        *,
        plugin_settings: Mapping[str, Mapping[str, Any]] | None = None,
        installed: Sequence[InstalledPlugin] | None = None,
    ) -> Kernel:
        """Build from `settings` (read from the environment when None).

        `plugin_settings` overrides individual plugin settings by plugin name (tests, tools).
        """
        settings = settings if settings is not None else CoreSettings.load()
        selection = select_plugins(
            discover() if installed is None else installed,
            settings.enabled_plugins,
            settings.disabled_plugins,
        )
        settings_classes = {p.name: _settings_class(p) for p in selection.enabled}
        check_unknown_settings(settings, selection.installed, settings_classes)
        overrides = plugin_settings or {}
        unknown = sorted(set(overrides) - {p.name for p in selection.enabled})
        if unknown:
            raise PluginError(
                f"settings given for plugin(s) that are not enabled: {', '.join(unknown)}"
            )
        loaded: dict[str, PluginSettings] = {}
        for plugin in selection.enabled:
            settings_cls = settings_classes[plugin.name]
            if settings_cls is not None:
                loaded[plugin.name] = load_plugin_settings(
                    settings_cls, plugin.name, settings, overrides.get(plugin.name)
                )
            elif plugin.name in overrides:
                raise PluginError(f"plugin {plugin.name!r} has no settings to override")

        pm = hooks.new_plugin_manager()
        for plugin in selection.enabled:
            hooks.add_plugin_hookspecs(pm, plugin)
        container = compose(settings, pm, selection.enabled, loaded)
        kernel = cls(settings, selection.installed, selection.enabled, loaded, pm, container)
        # pluggy calls the last registered first: register in reverse so calls follow plugin order.
        for plugin in reversed(selection.enabled):
            hooks.register_hooks(pm, plugin, kernel.container_of(plugin.name))
        hooks.check_undeclared_hooks(pm)
        return kernel

    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def container_of(self, name: str) -> Any:
        """The container of enabled plugin `name` (one instance per kernel)."""
        return plugin_container(self.container, name)

    def call_each(
        self,
        hook_name: str,
        *,
        only: Collection[str] | None = None,
        **kwargs: Any,
    ) -> list[tuple[str, Any]]:
        """Call `hook_name` plugin by plugin in plugin order; (plugin, result) pairs."""
        return hooks.call_each(self.pm, hook_name, only=only, **kwargs)

    def collect(self, hook_name: str) -> list[tuple[str, list[Any]]]:
        """Call the `register_*` hook `hook_name`: (plugin, items) pairs, errors naming it."""
        return hooks.collect(self.pm, hook_name)

    def readiness_checks(self) -> list[ReadinessCheck]:
        """The checks the enabled plugins register, each named `<plugin>.<check>`.

        `/health/ready` reports checks by name, so one registered twice would hide the
        other's outcome: that is refused, naming the plugin and the check.
        """
        checks: dict[str, ReadinessCheck] = {}
        for plugin, items in self.collect("register_readiness_checks"):
            for item in items:
                if not isinstance(item, ReadinessCheck):
                    raise PluginError(
                        f"plugin {plugin!r}: register_readiness_checks returned a "
                        f"{type(item).__name__}, not a core.hookspecs.ReadinessCheck"
                    )
                name = f"{plugin}.{item.name}"
                if name in checks:
                    raise PluginError(
                        f"plugin {plugin!r}: readiness check {item.name!r} is registered "
                        "more than once (give each check its own name)"
                    )
                checks[name] = ReadinessCheck(name, item.check)
        return list(checks.values())

    def implementations(self, hook_name: str) -> list[Callable[..., Any]]:
        """The functions implementing `hook_name`, in plugin order."""
        return [impl.function for impl in hooks.implementations(self.pm, hook_name)]

    def installed_plugins(self) -> list[tuple[InstalledPlugin, Plugin | None, str | None]]:
        """Every installed plugin with its descriptor (or the error loading it)."""
        rows: list[tuple[InstalledPlugin, Plugin | None, str | None]] = []
        for item in self.installed.values():
            try:
                rows.append((item, item.load(), None))
            except PluginError as exc:
                rows.append((item, None, str(exc)))
        return rows


def _settings_class(plugin: Plugin) -> type[PluginSettings] | None:
    if plugin.settings is None:
        return None
    return plugin.resolve_class(plugin.settings, PluginSettings, "settings")
