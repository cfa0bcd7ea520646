"""The app's pluggy PluginManager: one per app instance, never global."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import pluggy

from core import hookspecs
from core.plugin import Plugin, PluginError

logger = logging.getLogger("courtyard.events")


class AsyncHookError(pluggy.PluginValidationError):
    """An `async def` implementation of a hook whose result the core uses right away."""


def must_be_plain(hook_name: str) -> bool:
    """Whether implementations of `hook_name` must be plain functions.

    The core's `register_*` hooks return collections that it iterates as soon as it calls
    them, outside any event loop: a coroutine there is never awaited.
    """
    return hook_name.startswith("register_") and hasattr(hookspecs, hook_name)


def plain_hook_message(hook_name: str) -> str:
    return f"hook {hook_name} must be a plain function (it returns a list), not async"


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, refusing async implementations of the hooks that must be plain."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None:
            hook_name = opts.get("specname") or name
            if must_be_plain(hook_name) and _is_async(inspect.getattr_static(plugin, name)):
                raise AsyncHookError(plugin, plain_hook_message(hook_name))
        return opts


def _is_async(attribute: Any) -> bool:
    function = getattr(attribute, "__func__", attribute)  # staticmethod, classmethod, bound
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = _PluginManager(hookspecs.PROJECT)
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
        try:
            target = factory(container)
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin.name!r}: hooks {plugin.hooks!r} failed to initialise: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    try:
        pm.register(target, name=plugin.name)
    except AsyncHookError as exc:
        raise PluginError(f"plugin {plugin.name!r}: {exc}") from None
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


def implementations(pm: pluggy.PluginManager, hook_name: str) -> list[pluggy.HookImpl]:
    """The implementations of `hook_name` in plugin order (pluggy's own call order)."""
    return in_plugin_order(getattr(pm.hook, hook_name))


def in_plugin_order(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The implementations of a hook in the order a hook call runs them."""
    # Plugins are registered in reverse order and pluggy lists the last registered first.
    return list(reversed(caller.get_hookimpls()))


def call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    *,
    only: Collection[str] | None = None,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """Call every implementation of `hook_name` in plugin order; return (plugin, result) pairs.

    Unlike a plain hook call this tells which plugin returned what, so errors and readiness
    checks can name the plugin.
    """
    results = []
    for impl in implementations(pm, hook_name):
        if only is None or impl.plugin_name in only:
            function: Callable[..., Any] = impl.function
            results.append((impl.plugin_name, function(**{n: kwargs[n] for n in impl.argnames})))
    return results


def collect(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, list[Any]]]:
    """Call the `register_*` hook `hook_name` plugin by plugin: (plugin, items) pairs.

    Whatever goes wrong names the plugin: an implementation that raises (or whose result
    cannot be iterated), or one that returns an awaitable. Registration already refuses an
    `async def`; this catches a plain function that returns a coroutine all the same.
    """
    return [
        (impl.plugin_name, _collect_one(impl, hook_name)) for impl in implementations(pm, hook_name)
    ]


def _collect_one(impl: pluggy.HookImpl, hook_name: str) -> list[Any]:
    function: Callable[..., Any] = impl.function
    try:
        result = function()
        if not inspect.isawaitable(result):
            return [] if result is None else list(result)
    except Exception as exc:
        raise PluginError(
            f"plugin {impl.plugin_name!r}: {hook_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if inspect.iscoroutine(result):
        result.close()  # never to be awaited: no "coroutine was never awaited" warning
    raise PluginError(f"plugin {impl.plugin_name!r}: {plain_hook_message(hook_name)}")


async def settle(results: Sequence[Any]) -> list[Any]:
    """Await the awaitable results of a hook call, so a plugin's listeners may be async.

    Emit events as `await settle(hooks.note_created(note=dto))` after the commit.
    """
    return [await r if inspect.isawaitable(r) else r for r in results]


async def emit(event: pluggy.HookCaller, **kwargs: Any) -> None:
    """Deliver an event to every listener, in plugin order, awaiting async ones.

    A listener that raises is logged (with the request id and the plugin's name) and the
    next one still runs: an event reports something that already happened, so a failing
    listener never undoes it. Call it after the commit, e.g.
    `session.after_commit(lambda: emit(hooks.note_created, note=dto))`.
    """
    for impl in in_plugin_order(event):
        try:
            result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("plugin %r failed handling event %r", impl.plugin_name, event.name)
