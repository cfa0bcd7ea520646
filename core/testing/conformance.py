"""`assert_plugin_conforms("notes")`: does an installed plugin follow the plugin contract?

It checks what a reviewer of a plugin would, through the plugin's real entry point, and
reports every problem at once, one line each, naming the plugin:

- with the plugins it requires, it passes the validation startup and
  `courtyard plugins --check` apply (`core.validation`, every problem reported): it
  loads under its entry-point name, its settings are a `PluginSettings` (so they live
  under `COURTYARD_<NAME>__`) and load from defaults, its hook implementations match
  their specs and implement only declared hooks, its container asks only for what the
  core gives, its router, models and migrations folder resolve;
- its tables carry its name (`<name>` or `<name>_…`), its migrations are a branch labelled
  with its name that goes up → down → up on an empty database, and its models agree with
  them;
- its routes are under `/api/v1/<prefix>` with its OpenAPI tag, a description, a success
  response, errors as problem details, 401 documented where a principal is needed and 404
  where a path names a resource;
- its modules import no other plugin except that plugin's `api` module, and only of a
  plugin it `requires`.
"""

from __future__ import annotations

import ast
import asyncio
import tempfile
import threading
from collections.abc import Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, inspect
from sqlalchemy.orm import Mapper

from core.db import Model, metadata
from core.kernel import Kernel
from core.migrator import Migrator
from core.plugin import API_PREFIX, InstalledPlugin, Plugin, PluginError, discover
from core.settings import ConfigurationError, CoreSettings
from core.testing.databases import fresh_database
from core.validation import validate


class PluginConformanceError(AssertionError):
    """The plugin breaks the contract; the message lists every problem, one per line."""


def assert_plugin_conforms(name: str, *, backend: str = "sqlite") -> None:
    """Raise PluginConformanceError listing every way plugin `name` breaks the contract.

    Runs on a throwaway database (`backend`: "sqlite", or "postgresql" on the server named
    by COURTYARD_TEST_DATABASE_URL). Callable from sync and async tests alike.
    """
    problems = _run(conformance_problems(name, backend=backend))
    if problems:
        lines = "\n".join(f"- {p}" for p in problems)
        raise PluginConformanceError(f"plugin {name!r} does not conform:\n{lines}")


async def conformance_problems(name: str, *, backend: str = "sqlite") -> list[str]:
    """Every problem found with plugin `name` (empty when it conforms)."""
    found = discover()
    installed = {item.name: item for item in found}
    if name not in installed:
        return [f"no plugin {name!r} is installed (entry point group 'courtyard.plugins')"]
    needed = _with_requirements(name, installed)
    with tempfile.TemporaryDirectory() as folder:
        async with fresh_database(backend, Path(folder)) as url:
            settings = CoreSettings(env="test", database_url=url, enabled_plugins=needed)
            validation = validate(found, settings, enabled=needed, references=True)
            if validation.problems:
                return [problem.message for problem in validation.problems]
            plugin = validation.plugins[name]
            kernel = Kernel.build(settings)
            problems = _import_problems(plugin, installed)
            problems += await _storage_problems(plugin, kernel)
            problems += _route_problems(plugin, settings)
            await kernel.container.database().dispose()
    return problems


def _run(coroutine: Any) -> Any:
    """Run `coroutine` to completion in a thread of its own, so a running loop is no bar."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="courtyard-conformance")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _with_requirements(name: str, installed: dict[str, InstalledPlugin]) -> list[str]:
    """`name` and the installed plugins it requires, directly or not. A requirement that
    is not installed or does not load is left for validation to report."""
    names: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        if current in names or current not in installed:
            continue
        names.append(current)
        try:
            pending.extend(installed[current].load().requires)
        except PluginError:
            continue
    return names


# Imports


def _import_problems(plugin: Plugin, installed: dict[str, InstalledPlugin]) -> list[str]:
    """Imports of another plugin's internals, or of a plugin it does not require."""
    others: dict[str, Plugin] = {}
    for item in installed.values():
        try:
            other = item.load()
        except PluginError:
            continue
        if other.name != plugin.name:
            others[other.package] = other
    problems = []
    for path, module in _modules(plugin):
        for imported, line in _imports(path, module):
            owner = _owner(imported, others)
            if owner is None:
                continue
            where = f"{path.name}:{line}"
            api = f"{owner.package}.api"
            if imported != api and not imported.startswith(f"{api}."):
                problems.append(
                    f"{where} imports {imported}, an internal module of plugin "
                    f"{owner.name!r}; import only {owner.package}.api"
                )
            elif owner.name not in plugin.requires:
                problems.append(
                    f"{where} imports {imported} without listing {owner.name!r} in `requires`"
                )
    return problems


def _modules(plugin: Plugin) -> Iterator[tuple[Path, str]]:
    root = Path(str(files(plugin.package)))
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        yield path, ".".join([plugin.package, *parts])


def _imports(path: Path, module: str) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                # `from x import y` may import module x.y, or name y from x: either counts.
                yield (f"{base}.{alias.name}" if base else alias.name), node.lineno


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    prefix = ".".join(parts[: max(keep, 0)])
    return f"{prefix}.{node.module}" if node.module else prefix


def _owner(imported: str, others: dict[str, Plugin]) -> Plugin | None:
    for package, other in others.items():
        if imported == package or imported.startswith(f"{package}."):
            return other  # `from plugins.user.api import User` arrives as plugins.user.api.User
    return None


# Storage


def _model_classes(base: type) -> list[type]:
    """`base`'s subclasses and theirs, each once."""
    found: dict[type, None] = {}
    subclasses: list[type] = base.__subclasses__()
    for cls in subclasses:
        found[cls] = None
        found.update(dict.fromkeys(_model_classes(cls)))
    return list(found)


def _own_tables(plugin: Plugin) -> list[Table]:
    if plugin.models is None:
        return []
    plugin.resolve(plugin.models)
    tables = []
    for cls in _model_classes(Model):
        mapper: Mapper[Any] | None = inspect(cls, raiseerr=False)  # None: not a table
        if mapper is None:
            continue
        if cls.__module__ == plugin.package or cls.__module__.startswith(f"{plugin.package}."):
            table = mapper.local_table
            if isinstance(table, Table):
                tables.append(table)
    return tables


async def _storage_problems(plugin: Plugin, kernel: Kernel) -> list[str]:
    tables = _own_tables(plugin)
    problems = [
        f"table {t.name!r} does not carry the plugin's name (use {plugin.name!r} or "
        f"'{plugin.name}_…')"
        for t in tables
        if not (t.name == plugin.name or t.name.startswith(f"{plugin.name}_"))
    ]
    if plugin.migrations is None:
        if tables:
            problems.append("it has tables but declares no migrations")
        return problems
    migrator = Migrator(kernel)
    if not migrator.has_branch(plugin.name):
        return [*problems, f"its migrations have no branch labelled {plugin.name!r}"]
    names = [t.name for t in tables]
    try:
        await migrator.upgrade()
        problems += _missing(names, await _table_names(kernel), "after upgrade")
        problems += await _differences(kernel, names)
        await migrator.downgrade(f"{plugin.name}@base")
        left = set(names) & await _table_names(kernel)
        if left:
            problems.append(f"downgrade to base left table(s) {', '.join(sorted(left))}")
        await migrator.upgrade([plugin.name])
        problems += _missing(names, await _table_names(kernel), "after upgrade → downgrade → up")
    except ConfigurationError as exc:
        problems.append(str(exc))
    return problems


def _missing(names: Iterable[str], present: set[str], when: str) -> list[str]:
    missing = sorted(set(names) - present)
    return [f"table(s) {', '.join(missing)} missing {when}"] if missing else []


async def _table_names(kernel: Kernel) -> set[str]:
    async with kernel.container.database().write_engine.connect() as connection:
        names: list[str] = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names)


async def _differences(kernel: Kernel, names: list[str]) -> list[str]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if table_of_difference(d) in names]

    async with kernel.container.database().write_engine.connect() as connection:
        diffs = await connection.run_sync(compare)
    return [f"models and migrations differ: {d}" for d in diffs]


def table_of_difference(diff: Any) -> str | None:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(diff, list):  # modify_* differences come grouped per column
        return table_of_difference(diff[0])
    kind, *args = diff
    if kind in ("add_column", "remove_column") or kind.startswith("modify_"):
        return str(args[1])  # (schema, table name, ...)
    target = args[0]  # a Table, or an Index / constraint that belongs to one
    return str(getattr(target, "table", target).name)


# Routes


def _route_problems(plugin: Plugin, settings: CoreSettings) -> list[str]:
    if plugin.router is None:
        return []
    from core.app import create_app

    schema = create_app(settings).openapi()
    prefix = f"{API_PREFIX}/{plugin.url_prefix}"
    operations = [
        (path, method, operation)
        for path, item in schema.get("paths", {}).items()
        if path == prefix or path.startswith(f"{prefix}/")
        for method, operation in item.items()
    ]
    if not operations:
        return [f"it declares a router but no route is mounted under {prefix}"]
    problems = []
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        responses: dict[str, Any] = operation.get("responses", {})
        if operation.get("tags") != [plugin.openapi_tag]:
            problems.append(
                f"{where}: tags {operation.get('tags')} are not [{plugin.openapi_tag!r}]"
            )
        if not operation.get("description"):
            problems.append(f"{where}: no description (give the route a docstring)")
        if not any(code.startswith("2") for code in responses):
            problems.append(f"{where}: no success response documented")
        for code, response in responses.items():
            if code[0] in "45" and "application/problem+json" not in response.get("content", {}):
                problems.append(f"{where}: error {code} is not documented as problem+json")
        if operation.get("security") and "401" not in responses:
            problems.append(f"{where}: needs a principal but does not document 401")
        if "{" in path and "404" not in responses:
            problems.append(f"{where}: names a resource but does not document 404")
    return problems
