"""The app's pluggy PluginManager (one per app instance, never global) and the ways the
core calls hooks: `call_hook` for hooks whose implementations may be async, `emit` for
events, `collect` for the `register_*` hooks (plain functions returning collections)."""

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
    """Publish the events `plugin` declares, so other plugins may implement them.

    PluginError naming the plugin when one of them is already declared (by the core or a
    plugin added before it).
    """
    if plugin.hookspecs is None:
        return
    module = plugin.resolve(plugin.hookspecs)
    clashes = [name for name in spec_names(module) if pm.hook.__dict__.get(name) is not None]
    if clashes:
        raise PluginError(
            f"plugin {plugin.name!r} declares hook(s) {', '.join(map(repr, clashes))}, "
            "already declared by the core or another plugin"
        )
    pm.add_hookspecs(module)


def spec_names(module: Any) -> list[str]:
    """The names of the hooks `module` declares with `@hookspec`."""
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
    register(pm, plugin, target)


def register(pm: pluggy.PluginManager, plugin: Plugin, target: Any) -> None:
    """Register `target` (a module, a class or an instance) as `plugin`'s implementations:
    PluginError naming the plugin when one does not match its spec. A class is checked
    exactly as an instance of it would be, without running the plugin's code."""
    try:
        pm.register(target, name=plugin.name)
    except AsyncHookError as exc:
        raise PluginError(f"plugin {plugin.name!r}: {exc}") from None
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {plugin.name!r} has an invalid hook implementation: {exc}"
        ) from None


def undeclared_hooks(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(plugin, hook) for each implementation of a hook nobody declares, unless it is
    marked @hookimpl(optionalhook=True); by hook name, then plugin order."""
    return [
        (impl.plugin_name, name)
        for name, caller in sorted(pm.hook.__dict__.items())
        if not name.startswith("_") and not caller.has_spec()
        for impl in in_plugin_order(caller)
        if not impl.optionalhook
    ]


def in_plugin_order(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The implementations of a hook in the order a hook call runs them."""
    # Plugins are registered in reverse order and pluggy lists the last registered first.
    return list(reversed(caller.get_hookimpls()))


async def call_hook(
    caller: pluggy.HookCaller,
    /,
    *,
    only: Collection[str] | None = None,
    chain: str | None = None,
    returns: type | None = None,
    accept: Callable[[Any], bool] | None = None,
    named: bool = False,
    on_error: Callable[[str, Exception], None] | None = None,
    **kwargs: Any,
) -> Any:
    """Call the implementations of a hook, sync or async, as pluggy would, awaiting each
    result before the next implementation runs: `await call_hook(hooks.authenticate,
    request=request)`.

    Implementations run in plugin order (pluggy's `tryfirst`/`trylast` respected); hook
    wrappers are skipped, as no pluggy call is made for them to wrap. The result is
    pluggy's: for a `firstresult` hook, the first result that is not None (None when
    there is none), and later implementations are not called; for any other hook, the
    list of results that are not None.

    - `only`: call only these plugins' implementations.
    - `chain="principal"`: each implementation gets the previous one's result as that
      argument; a None ends the call. The last result is returned (None if one was None).
    - `returns`: the type every result other than None must have; TypeError naming the
      plugin otherwise.
    - `accept`: what counts as a result (default: not None), e.g. `bool`.
    - `named`: results as (plugin, result) pairs.
    - `on_error(plugin, exception)`: called when an implementation raises, and the call
      goes on with the next one; without it the exception propagates.
    """
    spec = caller.spec
    first = chain is None and spec is not None and spec.opts.get("firstresult")
    results: list[Any] = []
    for impl in reversed(caller.get_hookimpls()):  # plugin order, as in_plugin_order
        if impl.wrapper or impl.hookwrapper or (only is not None and impl.plugin_name not in only):
            continue
        try:
            result = impl.function(*[kwargs[name] for name in impl.argnames])
            if result is not None and inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            if on_error is None:
                raise
            on_error(impl.plugin_name, exc)
            continue
        if returns is not None and result is not None and not isinstance(result, returns):
            raise TypeError(
                f"plugin {impl.plugin_name!r}: {caller.name} must return "
                f"{returns.__qualname__} or None, not {type(result).__qualname__}"
            )
        if chain is not None:
            if result is None:
                return None
            kwargs[chain] = result
        elif result is not None if accept is None else accept(result):
            answer = (impl.plugin_name, result) if named else result
            if first:
                return answer
            results.append(answer)
    if chain is not None:
        return kwargs[chain]
    return None if first else results


def collect(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, list[Any]]]:
    """Call the `register_*` hook `hook_name` plugin by plugin: (plugin, items) pairs.

    Whatever goes wrong names the plugin: an implementation that raises (or whose result
    cannot be iterated), or one that returns an awaitable. Registration already refuses an
    `async def`; this catches a plain function that returns a coroutine all the same.
    """
    return [
        (impl.plugin_name, _collect_one(impl, hook_name))
        for impl in in_plugin_order(getattr(pm.hook, hook_name))
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
    """Await the awaitable results of a plain hook call, so a plugin's listeners may be
    async: `await settle(hooks.note_created(note=dto))`. (`call_hook` and `emit` await
    each listener before calling the next; a plain call runs them all first.)"""
    return [await r if inspect.isawaitable(r) else r for r in results]


async def emit(event: pluggy.HookCaller, **kwargs: Any) -> None:
    """Deliver an event to every listener, in plugin order, awaiting async ones.

    A listener that raises is logged (with the request id and the plugin's name) and the
    next one still runs: an event reports something that already happened, so a failing
    listener never undoes it. Call it after the commit, e.g.
    `session.after_commit(lambda: emit(hooks.note_created, note=dto))`.
    """

    def failed(plugin: str, exc: Exception) -> None:
        logger.error("plugin %r failed handling event %r", plugin, event.name, exc_info=exc)

    await call_hook(event, on_error=failed, **kwargs)
