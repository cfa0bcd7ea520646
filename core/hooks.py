"""The app's pluggy PluginManager: one per app instance, never global."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pluggy

from core import hookspecs
from core.plugin import Plugin, PluginError


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def add_plugin_hookspecs(pm: pluggy.PluginManager, plugin: Plugin) -> None:
    """Publish the events `plugin` declares, so other plugins may implement them."""
    if plugin.hookspecs is None:
        return
    module = plugin.resolve(plugin.hookspecs)
    clashes = [name for name in _spec_names(module) if pm.hook.__dict__.get(name) is not None]
    if clashes:
        raise PluginError(
            f"plugin {plugin.name!r} declares hook(s) {', '.join(map(repr, clashes))}, "
            "already declared by the core or another plugin"
        )
    pm.add_hookspecs(module)


def _spec_names(module: Any) -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return [name for name, obj in inspect.getmembers(module) if hasattr(obj, marker)]


def register_hooks(pm: pluggy.PluginManager, plugin: Plugin, container: Any) -> None:
    """Register `plugin`'s hook implementations (a module, or a class built with its container)."""
    if plugin.hooks is None:
        return
    target: Any = plugin.resolve(plugin.hooks)
    if inspect.isclass(target):
        factory: Callable[[Any], Any] = target
        target = factory(container)
    try:
        pm.register(target, name=plugin.name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {plugin.name!r} has an invalid hook implementation: {exc}"
        ) from None


def check_undeclared_hooks(pm: pluggy.PluginManager) -> None:
    """Reject a hookimpl for a hook no enabled plugin declares (unless optionalhook=True)."""
    for name, caller in sorted(pm.hook.__dict__.items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements hook {name!r}, which no enabled "
                    "plugin declares (enable the plugin that declares it, or mark the "
                    "implementation @hookimpl(optionalhook=True))"
                )


def call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    order: Sequence[str],
    *,
    reverse: bool = False,
    only: Collection[str] | None = None,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """Call every implementation of `hook_name` in plugin order; return (plugin, result) pairs.

    Unlike a plain hook call this tells which plugin returned what, so errors and readiness
    checks can name the plugin.
    """
    rank: Mapping[str, int] = {name: i for i, name in enumerate(order)}
    caller = getattr(pm.hook, hook_name)
    impls = sorted(caller.get_hookimpls(), key=lambda i: rank.get(i.plugin_name, len(rank)))
    if reverse:
        impls.reverse()
    results = []
    for impl in impls:
        if only is not None and impl.plugin_name not in only:
            continue
        function: Callable[..., Any] = impl.function
        args = {name: kwargs[name] for name in impl.argnames}
        results.append((impl.plugin_name, function(**args)))
    return results
