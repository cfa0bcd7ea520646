"""Per-plugin Alembic branches in one environment (`core/migrations`).

Every installed plugin's `migrations/versions` folder is a version location, so revisions
of a disabled plugin stay known; upgrades touch only the enabled plugins' branches, in
plugin order. Each plugin's first revision carries `branch_labels=("<name>",)`.

A row of `alembic_version` that no installed plugin's revisions know is *orphaned*: its
plugin was uninstalled while its tables stayed. Alembic cannot work with a revision it
does not know, so every command reads and moves the other branches without it, and the
row itself is left as it is (see `orphan_advice` for how it goes away).

Upgrades and downgrades of a PostgreSQL database run one at a time, whatever the number of
processes started together (see `_queue_behind_other_migrations`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import produce_migrations
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    func,
    inspect,
    literal,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.engine import create_engine
from core.db.model import metadata
from core.kernel import Kernel
from core.migration_dependencies import (
    first_revisions_with,
    referenced_tables,
    tables_pointed_at,
)
from core.revision_graph import (
    VERSION_TABLE,
    BranchState,
    MigrationError,
    RevisionGraph,
    Survey,
    migration_locations,
    recorded_versions,
)
from core.revision_reader import alembic_config, graph_of, owner_in, read_scripts

# The PostgreSQL advisory lock every upgrade and downgrade takes. Chosen once: the first
# 8 bytes of SHA-256(b"courtyard migrations") read as a signed big-endian bigint, so that it
# is unlikely to be a key an application picked by hand. It must never change: an older and
# a newer release migrating the same database together have to queue on the same key.
# (In pg_locks a bigint key shows as classid 3582057861, objid 2885195095, objsubid 1.)
MIGRATION_LOCK_KEY = -3_061_922_705_449_642_665


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did: every branch it moved, as (before, after), in plugin order;
    the orphaned rows it left alone. `targets` are the plugins it was asked to bring to
    their heads (all there now)."""

    targets: list[str]
    moved: list[tuple[BranchState, BranchState]]
    orphaned: tuple[str, ...]

    @property
    def already_at_head(self) -> list[str]:
        """The targets that were at their heads before."""
        moved = {after.plugin for _, after in self.moved}
        return [name for name in self.targets if name not in moved]


class Migrator:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.locations = migration_locations(kernel)
        self._resolved = {name: path.resolve() for name, path in self.locations.items()}
        self.enabled = [p.name for p in kernel.plugins if p.name in self.locations]
        self._script: ScriptDirectory | None = None
        self._graph: RevisionGraph | None = None
        self._surveys: dict[tuple[str, ...], Survey] = {}

    # -- configuration -------------------------------------------------------------------

    def config(self) -> Config:
        cfg = alembic_config(self.locations)
        cfg.attributes["table_owner"] = self.table_owner
        return cfg

    @property
    def script(self) -> ScriptDirectory:
        if self._script is None:
            self._script = read_scripts(self.config())
        return self._script

    @property
    def graph(self) -> RevisionGraph:
        if self._graph is None:
            self._graph = graph_of(self.script, self.locations)
        return self._graph

    def table_owner(self, table_name: str) -> str | None:
        """The installed plugin whose name prefixes `table_name` (longest match wins)."""
        owners = [
            n for n in self.kernel.installed if table_name == n or table_name.startswith(f"{n}_")
        ]
        return max(owners, key=len) if owners else None

    def owner_of(self, revision: Script) -> str | None:
        return owner_in(self._resolved, revision)

    def heads(self) -> Mapping[str, str]:
        """The head revision of every installed plugin's branch."""
        return self.graph.heads

    def has_branch(self, name: str) -> bool:
        return name in self.heads()

    def orphaned(self, rows: tuple[str, ...]) -> tuple[str, ...]:
        """The rows of `alembic_version` that no installed plugin's revisions know."""
        return self.graph.orphaned(rows)

    # -- running ---------------------------------------------------------------------------

    def _engine(self) -> AsyncEngine:
        settings = self.kernel.settings
        return create_engine(settings.database_url, settings, migrations=True)

    async def _run(
        self,
        work: Callable[[Connection], Any],
        *,
        migrating: bool = False,
        waiting: Callable[[], None] | None = None,
    ) -> Any:
        """Run `work` in one transaction; `migrating`: queued behind any other migration of
        the database first, `waiting` called if it has to wait.

        A migration reads in READ COMMITTED, whatever the server's default: in REPEATABLE
        READ a process that waited for the lock would still see the database as it was when
        its wait began, and apply the same revisions again.
        """
        engine = self._engine()
        try:
            async with engine.connect() as connection:
                if migrating and connection.dialect.name == "postgresql":
                    await connection.execution_options(isolation_level="READ COMMITTED")
                async with connection.begin():
                    if migrating:
                        await connection.run_sync(_queue_behind_other_migrations, waiting)
                    return await connection.run_sync(work)
        finally:
            await engine.dispose()

    @contextlib.contextmanager
    def _commands(self, connection: Connection, **attributes: Any) -> Iterator[Config]:
        """The configuration Alembic's commands run with on `connection`, with any orphaned
        row of `alembic_version` out of its sight: taken out first, put back as it was once
        the commands are done (in the same transaction, so a failure leaves it too)."""
        cfg = self.config()
        cfg.attributes.update(connection=connection, **attributes)
        orphaned = self.orphaned(recorded_versions(connection))
        if orphaned:
            connection.execute(
                VERSION_TABLE.delete().where(VERSION_TABLE.c.version_num.in_(orphaned))
            )
        try:
            yield cfg
        except CommandError as exc:
            raise MigrationError(f"migration failed: {exc}") from None
        if orphaned:
            connection.execute(VERSION_TABLE.insert(), [{"version_num": r} for r in orphaned])

    async def upgrade(
        self,
        plugins: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> list[str]:
        """Upgrade the branches of the enabled plugins (or `plugins`) to their heads.

        Returns the plugins whose branches are now at their heads (`upgrade_report` tells
        what moved). `progress` is called with each one that was behind, as its upgrade
        starts.
        """
        report = await self.upgrade_report(plugins, progress=progress, waiting=waiting)
        return report.targets

    async def upgrade_report(
        self,
        plugins: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Upgrade:
        """Upgrade the branches of the enabled plugins (or `plugins`) to their heads, and
        say what moved.

        `progress` is called with each one that was behind, as its upgrade starts: a process
        that waited for another one's upgrade (`waiting` is called then) finds the branches
        at their heads and upgrades none. Orphaned rows stay as they are.
        """
        targets = self.enabled if plugins is None else plugins
        for name in targets:
            if name not in self.enabled:
                raise MigrationError(f"plugin {name!r} is not enabled or has no migrations")
        heads = self.heads()
        todo = [n for n in targets if n in heads]

        def work(connection: Connection) -> Upgrade:
            rows = recorded_versions(connection)
            before = self.branch_states(rows)
            with self._commands(connection) as cfg:
                for name in todo:
                    if self._at_head(connection, name):
                        continue
                    if progress:
                        progress(name)
                    try:
                        command.upgrade(cfg, f"{name}@head")
                    except DBAPIError as exc:
                        if orphaned := self.orphaned(rows):
                            raise MigrationError(_beside_orphans(name, exc, orphaned)) from None
                        raise
            after = self.branch_states(recorded_versions(connection))
            return Upgrade(todo, self._in_plugin_order(before, after), self.orphaned(rows))

        report: Upgrade = await self._run(work, migrating=True, waiting=waiting)
        return report

    def _in_plugin_order(
        self, before: list[BranchState], after: list[BranchState]
    ) -> list[tuple[BranchState, BranchState]]:
        """The branches that moved, as (before, after): enabled plugins first, in order."""
        moved = [(was, now) for was, now in zip(before, after, strict=True) if was != now]
        rank = {name: i for i, name in enumerate(self.enabled)}
        return sorted(moved, key=lambda pair: rank.get(pair[0].plugin, len(rank)))

    def _at_head(self, connection: Connection, plugin: str) -> bool:
        """Whether `plugin`'s branch is at its head in the database, read now."""
        states = self.branch_states(recorded_versions(connection))
        return next(s for s in states if s.plugin == plugin).at_head

    async def downgrade(
        self, target: str, *, cascade: bool = False, waiting: Callable[[], None] | None = None
    ) -> list[BranchState]:
        """Downgrade one branch to `<plugin>@<revision>`, `<plugin>@base` or `<plugin>@-1`.

        Alembic also removes every applied revision of another branch that `depends_on` a
        revision it removes (and drops that plugin's tables): refused unless `cascade`.
        Returns the state of each branch that moved, the target's and any other's. Queued
        behind any other migration of the database, as `upgrade` is (`waiting` is called if
        it has to wait); a relative target (`@-1`) counts from where the branch stands then.
        """
        name, sep, revision = target.partition("@")
        if not sep or not name or not revision:
            raise MigrationError(
                f"downgrade target {target!r} must be <plugin>@<revision>, "
                f"e.g. {name or 'notes'}@base"
            )
        if name not in self.locations:
            raise MigrationError(f"plugin {name!r} is not installed or has no migrations")

        def work(connection: Connection) -> list[BranchState]:
            current = recorded_versions(connection)
            others = sorted(self._owners_removed(target, current) - {name})
            if others and not cascade:
                raise MigrationError(
                    f"downgrading {target} would also downgrade the branches of "
                    f"{', '.join(others)}, which depend on its revisions: "
                    "use --cascade to downgrade them too"
                )
            with self._commands(connection) as cfg:
                command.downgrade(cfg, target)
            before = self.branch_states(current)
            after = self.branch_states(recorded_versions(connection))
            return [now for was, now in zip(before, after, strict=True) if was != now]

        moved: list[BranchState] = await self._run(work, migrating=True, waiting=waiting)
        return moved

    def _owners_removed(self, target: str, current: tuple[str, ...]) -> set[str]:
        """The plugins whose applied revisions a downgrade to `target` from `current` (the
        rows of `alembic_version`) would remove.

        Alembic is asked for the very revisions its downgrade removes, the revisions of other
        branches that `depends_on` them included, so no dependency is worked out here.
        """
        known = tuple(row for row in current if row not in self.orphaned(current))
        try:
            removed = self.script.iterate_revisions(known, target, select_for_downgrade=True)
            return {self.owner_of(script) or script.revision for script in removed}
        except RevisionError as exc:
            raise MigrationError(f"migration failed: {exc}") from None

    async def states(self) -> list[BranchState]:
        """Where each installed plugin's branch stands in the database."""
        return (await self.survey()).branches

    async def survey(self, engine: AsyncEngine | None = None) -> Survey:
        """Where each installed plugin's branch stands, and the orphaned rows, read from
        `alembic_version` (through `engine`, or an engine of its own); the answer for a
        given set of rows is computed once."""
        if engine is None:
            rows: tuple[str, ...] = await self._run(recorded_versions)
        else:
            async with engine.connect() as connection:
                rows = await connection.run_sync(recorded_versions)
        if rows not in self._surveys:
            self._surveys[rows] = self.graph.survey(rows, self.locations, self.enabled)
        return self._surveys[rows]

    async def unowned_tables(self) -> list[str]:
        """The tables of the database no installed plugin owns (`alembic_version` aside):
        an uninstalled plugin's, or tables made outside any plugin."""

        def names(connection: Connection) -> list[str]:
            return sorted(inspect(connection).get_table_names())

        found: list[str] = await self._run(names)
        return [n for n in found if n != "alembic_version" and self.table_owner(n) is None]

    def branch_states(self, current_heads: tuple[str, ...]) -> list[BranchState]:
        """Where each installed plugin's branch stands, given the rows of `alembic_version`
        (orphaned rows are left out)."""
        return self.graph.branch_states(current_heads, self.locations, self.enabled)

    def prepare(self) -> None:
        """Read every plugin's revision files now (slow, blocking) so checks need no I/O."""
        _ = self.graph

    async def pending(self, engine: AsyncEngine) -> list[str]:
        """Enabled plugins whose branch is not at its head (used by /health/ready).

        Only `alembic_version` is read; the answer for a given set of rows is computed once.
        """
        return (await self.survey(engine)).behind

    def history(self, plugin: str | None = None) -> list[tuple[str, Script]]:
        """(plugin, revision) pairs, newest first."""
        if plugin is not None and plugin not in self.locations:
            raise MigrationError(f"plugin {plugin!r} is not installed or has no migrations")
        rows = [(self.owner_of(s) or "?", s) for s in self.script.walk_revisions()]
        return [r for r in rows if plugin is None or r[0] == plugin]

    async def revision(self, plugin: str, message: str, *, autogenerate: bool = False) -> Path:
        """Write a new revision into `plugin`'s branch; autogenerate compares only its tables
        and fills `depends_on` (core.migration_dependencies)."""
        if plugin not in self.enabled:
            raise MigrationError(f"plugin {plugin!r} is not enabled or has no migrations folder")
        directory = self.locations[plugin]
        directory.mkdir(parents=True, exist_ok=True)
        first = not self.has_branch(plugin)
        if autogenerate:
            self._import_models()
        created: list[Any] = []
        needs = self._revisions_making_tables(plugin) if autogenerate else {}

        def compare(context: MigrationContext, revision: Any, directives: list[Any]) -> None:
            _compare(context, revision, directives)
            tables = referenced_tables(directives[0].upgrade_ops)
            depends_on = {needs[name] for name in tables if name in needs}
            if not first:  # what the branch already comes after needs no saying again
                before = self.script.iterate_revisions(self.heads()[plugin], "base")
                depends_on -= {s.revision for s in before if s}
            directives[0].depends_on = sorted(depends_on) or None

        def work(connection: Connection) -> None:
            if autogenerate and not first:
                mine = next(
                    s for s in self.branch_states(_current_heads(connection)) if s.plugin == plugin
                )
                if not mine.at_head:
                    raise MigrationError(
                        f"plugin {plugin!r} is at {mine.current or 'base'} in the database, "
                        f"not at its head {mine.head}: run `courtyard db upgrade` first"
                    )
            with self._commands(connection, plugin=plugin) as cfg:
                if autogenerate:
                    cfg.set_main_option("revision_environment", "true")  # runs `compare`
                result = command.revision(
                    cfg,
                    message=message,
                    # Compared in _compare, not by Alembic's autogenerate, which insists
                    # that every plugin's branch (even a disabled one) is at its head.
                    autogenerate=False,
                    process_revision_directives=compare if autogenerate else None,
                    head="base" if first else f"{plugin}@head",
                    branch_label=plugin if first else None,
                    version_path=str(directory),
                )
                created.extend(result if isinstance(result, list) else [result])

        await self._run(work)
        self._script, self._graph, self._surveys = None, None, {}
        return Path(created[0].path)

    def _revisions_making_tables(self, plugin: str) -> dict[str, str]:
        """For each table of another plugin that `plugin`'s models point at, the revision
        its new revisions must come after: the first of its branch at which the table
        exists or, when that cannot be found, the branch's head
        (core.migration_dependencies)."""
        wanted: dict[str, set[str]] = {}
        for name in tables_pointed_at(metadata, lambda t: self.table_owner(t) == plugin):
            owner = self.table_owner(name)
            if owner is not None and owner != plugin and self.has_branch(owner):
                wanted.setdefault(owner, set()).add(name)
        needs: dict[str, str] = {}
        for owner, tables in wanted.items():
            branch = [s.revision for s in self._oldest_first(owner)]
            found = first_revisions_with(tables, branch, self._scratch_config)
            needs.update({name: found.get(name, self.heads()[owner]) for name in tables})
        return needs

    def _oldest_first(self, plugin: str) -> list[Script]:
        return [
            s for s in reversed(list(self.script.walk_revisions())) if self.owner_of(s) == plugin
        ]

    def _scratch_config(self, connection: Connection) -> Config:
        cfg = self.config()
        cfg.attributes["connection"] = connection
        return cfg

    def _import_models(self) -> None:
        for plugin in self.kernel.plugins:
            if plugin.models:
                plugin.resolve(plugin.models)


def _compare(context: MigrationContext, revision: Any, directives: list[Any]) -> None:
    """Fill a new revision with the differences between the models and the database.

    The environment's `include_object` limits them to the plugin the revision is for.
    """
    generated = produce_migrations(context, metadata)
    directives[0].upgrade_ops = generated.upgrade_ops
    directives[0].downgrade_ops = generated.downgrade_ops


def _beside_orphans(plugin: str, exc: DBAPIError, orphaned: tuple[str, ...]) -> str:
    """The one-line error of a revision of `plugin` that failed while `alembic_version` has
    orphaned rows, which may be why.

    A plugin's row stands for the revisions of other branches it `depends_on` when Alembic
    keeps no row of their own: once that plugin is uninstalled, such a branch looks behind
    although its tables exist, and its upgrade fails making them again.
    """
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return (
        f"migration failed upgrading {plugin}: {reason}; the orphaned revision "
        f"{', '.join(orphaned)} (of a plugin no longer installed) may stand for {plugin}'s "
        "revisions too: reinstall that plugin and run `courtyard db downgrade <plugin>@base` "
        "first"
    )


def _queue_behind_other_migrations(
    connection: Connection, waiting: Callable[[], None] | None
) -> None:
    """Take the migration lock on a PostgreSQL database, waiting for as long as another
    process holds it; call `waiting` first if it is held.

    Instances of an app started together may each run `courtyard db upgrade`: without the
    lock their transactions would create the same tables at once, and all but one would
    fail. The lock is taken by the transaction's first statement, before anything is read,
    so a process that waited reads `alembic_version` as the one before it committed it.

    `pg_advisory_xact_lock` is a transaction-level lock: the commit or rollback that ends
    the migration releases it (so does the server, if the process dies with its connection),
    and it never outlives the transaction. That keeps it working behind a pooler in
    transaction mode (pgbouncer, `COURTYARD_DB_POOLER=transaction`), which keeps a client on
    one server connection for a transaction only: a session-level lock could be taken on
    one server connection and its unlock sent on another, or stay held on a server
    connection handed to other clients. Advisory locks belong to one database, so
    migrations of different databases on one server do not wait for each other.

    SQLite needs none: a migration's transaction begins by taking the database's write lock
    (`BEGIN IMMEDIATE`, `core.db.engine`), which already admits one writer at a time.
    """
    if connection.dialect.name != "postgresql":
        return
    key = literal(MIGRATION_LOCK_KEY, BigInteger)
    if connection.scalar(select(func.pg_try_advisory_xact_lock(key, type_=Boolean))):
        return
    if waiting is not None:
        waiting()
    connection.execute(select(func.pg_advisory_xact_lock(key)))


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())
