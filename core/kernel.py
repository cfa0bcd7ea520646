"""The Kernel: everything built from configuration, shared by the app and the CLI.

discover → filter by configuration → validate (core.validation) → order → hooks →
containers. Every failure is a ConfigurationError whose message is one line naming what
is at fault.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy
from starlette.middleware import Middleware

from core import hooks
from core.container import RootContainer, compose, plugin_container
from core.hookspecs import ReadinessCheck
from core.plugin import (
    InstalledPlugin,
    Plugin,
    PluginError,
    discover,
    enabled_names,
    order_plugins,
)
from core.settings import CoreSettings, PluginSettings
from core.state import Lifecycle
from core.validation import validate


@dataclass
class Kernel:
    settings: CoreSettings
    installed: dict[str, InstalledPlugin]
    plugins: list[Plugin]
    plugin_settings: dict[str, PluginSettings]
    pm: pluggy.PluginManager
    container: RootContainer
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # what the server tells the app

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
        The enabled plugins are validated first (core.validation); the first problem found
        is raised.
        """
        settings = settings if settings is not None else CoreSettings.load()
        found = discover() if installed is None else list(installed)
        enabled = enabled_names(
            {item.name for item in found}, settings.enabled_plugins, settings.disabled_plugins
        )
        overrides = plugin_settings or {}
        unknown = sorted(set(overrides) - set(enabled))
        if unknown:
            raise PluginError(
                f"settings given for plugin(s) that are not enabled: {', '.join(unknown)}"
            )
        validation = validate(found, settings, enabled=enabled, overrides=overrides)
        validation.raise_first()
        plugins = order_plugins(validation.plugins.values())

        pm = hooks.new_plugin_manager()
        for plugin in plugins:
            hooks.add_plugin_hookspecs(pm, plugin)
        container = compose(settings, pm, plugins, validation.settings)
        kernel = cls(settings, validation.installed, plugins, validation.settings, pm, container)
        # pluggy calls the last registered first: register in reverse so calls follow plugin order.
        for plugin in reversed(plugins):
            hooks.register_hooks(pm, plugin, kernel.container_of(plugin.name))
        return kernel

    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def container_of(self, name: str) -> Any:
        """The container of enabled plugin `name` (one instance per kernel)."""
        return plugin_container(self.container, name)

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

    def middleware(self) -> list[Middleware]:
        """The middleware the enabled plugins register, in plugin order.

        Each must be a `starlette.middleware.Middleware` whose arguments its factory takes
        (checked against the factory's signature, without calling it): Starlette builds
        the middleware only when the first request or lifespan event arrives, where a
        mistake would surface far from its cause. Refused naming the plugin and the hook.
        """
        found: list[Middleware] = []
        for plugin, items in self.collect("register_middleware"):
            for item in items:
                if not isinstance(item, Middleware):
                    raise PluginError(
                        f"plugin {plugin!r}: register_middleware returned a "
                        f"{type(item).__name__}, not a starlette.middleware.Middleware"
                    )
                problem = _unfit_arguments(item)
                if problem:
                    raise PluginError(f"plugin {plugin!r}: register_middleware: {problem}")
                found.append(item)
        return found

    def installed_plugins(self) -> list[tuple[InstalledPlugin, Plugin | None, str | None]]:
        """Every installed plugin with its descriptor (or the error loading it)."""
        rows: list[tuple[InstalledPlugin, Plugin | None, str | None]] = []
        for item in self.installed.values():
            try:
                rows.append((item, item.load(), None))
            except PluginError as exc:
                rows.append((item, None, str(exc)))
        return rows


def _unfit_arguments(item: Middleware) -> str | None:
    """Why `item`'s factory cannot be called with the app and `item`'s arguments, or None
    (also when its signature cannot be read: a builtin)."""
    name = getattr(item.cls, "__qualname__", repr(item.cls))
    if not callable(item.cls):
        return f"{name} is not callable"
    try:
        signature = inspect.signature(item.cls)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None, *item.args, **item.kwargs)  # None: the app it will wrap
    except TypeError as exc:
        return f"{name} cannot take these arguments: {exc}"
    return None
