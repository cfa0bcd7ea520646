"""The root dependency-injector container: settings, engines, sessions; plugins composed in.

Each plugin brings its own `DeclarativeContainer` and declares what it needs as
`providers.Dependency()` inputs, the narrowest it can: from a plugin it requires, only the
providers it uses (`user_directory`, not the whole `user` container). Only this module
composes them, by name:

| a plugin container's provider | is given |
|---|---|
| `settings` | the plugin's own settings object |
| `core_settings` | the CoreSettings |
| `database` | the core `Database` (engines and session factories) |
| `hooks` | the app's hook relay, to emit the plugin's events |
| `<required plugin>_<provider>` | that provider, if the required plugin's container publishes it |

Tests override any provider (`root.<plugin>.<provider>.override(...)`) instead of patching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy
from dependency_injector import containers, errors, providers

from core.db.engine import Database
from core.hookspecs import ReadinessCheck
from core.plugin import Plugin, PluginError
from core.settings import CoreSettings, PluginSettings


class RootContainer(containers.DeclarativeContainer):
    """Owns what the core provides; plugin containers are added as providers by name."""

    settings = providers.Dependency(instance_of=CoreSettings)
    hooks: providers.Dependency[Any] = providers.Dependency()
    database = providers.Singleton(Database, settings=settings)
    # What `/health/ready` runs: the core's checks and the plugins', gathered as the app
    # starts (`core.app`); none before.
    readiness_checks: providers.Object[tuple[ReadinessCheck, ...]] = providers.Object(())


def compose(
    settings: CoreSettings,
    pm: pluggy.PluginManager,
    plugins: list[Plugin],
    plugin_settings: Mapping[str, PluginSettings],
) -> RootContainer:
    """Build the root container with every enabled plugin's container composed into it."""
    root = RootContainer(settings=providers.Object(settings), hooks=providers.Object(pm.hook))
    classes: dict[str, type[containers.Container]] = {}
    for plugin in plugins:
        if plugin.container is None:
            continue
        container_cls = plugin.resolve_class(plugin.container, containers.Container, "container")
        classes[plugin.name] = container_cls
        offered: dict[str, Any] = {
            "settings": providers.Object(plugin_settings.get(plugin.name)),
            "core_settings": root.settings,
            "database": root.database,
            "hooks": root.hooks,
        }
        declared = container_cls.providers
        for required in plugin.requires:
            offered.update(_published(root, classes, plugin.name, required, declared))
        inputs = {name: provider for name, provider in offered.items() if name in declared}
        root.set_provider(plugin.name, providers.Container(container_cls, **inputs))
        try:
            root.providers[plugin.name]().check_dependencies()
        except errors.Error as exc:
            raise PluginError(f"plugin {plugin.name!r} container: {exc}") from None
    return root


def published_providers(container_cls: type[containers.Container]) -> frozenset[str]:
    """The providers a plugin's container offers to the plugins that require it: those its
    `published` class attribute names (the ones its api.py documents), never an input."""
    names = frozenset(getattr(container_cls, "published", ()))
    declared: Mapping[str, Any] = container_cls.providers
    return frozenset(
        name
        for name in names
        if name in declared and not isinstance(declared[name], providers.Dependency)
    )


def _published(
    root: RootContainer,
    classes: Mapping[str, type[containers.Container]],
    consumer: str,
    required: str,
    declared: Mapping[str, Any],
) -> dict[str, Any]:
    """The published providers of plugin `required` that `consumer` declares as inputs, by
    the name `<required>_<provider>` (`user_directory` is the user plugin's `directory`)."""
    container = root.providers.get(required)
    if not isinstance(container, providers.Container) or required not in classes:
        return {}
    if isinstance(declared.get(required), providers.DependenciesContainer):
        raise PluginError(
            f"plugin {consumer!r} container: declares all of plugin {required!r}'s container "
            f"({required} = providers.DependenciesContainer()); declare each provider it "
            f"uses as an input instead, e.g. {required}_service = providers.Dependency()"
        )
    published = published_providers(classes[required])
    prefix = f"{required}_"
    return {
        name: getattr(container, name.removeprefix(prefix))
        for name in declared
        if name.startswith(prefix) and name.removeprefix(prefix) in published
    }


def plugin_container(root: RootContainer, name: str) -> Any:
    """The container instance of plugin `name` (None when it declares none)."""
    provider = root.providers.get(name)
    return provider() if provider is not None else None
