"""`courtyard db …`: migrations of the enabled plugins' branches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from core.cli.context import CliContext
from core.cli.output import table
from core.revision_graph import orphan_advice

if TYPE_CHECKING:
    from core.migrator import Migrator, Upgrade

db_app = typer.Typer(
    name="db", help="Database migrations (one Alembic branch per plugin).", no_args_is_help=True
)


def _migrator(ctx: typer.Context) -> tuple[CliContext, Migrator]:
    # Alembic only for the commands that use it: not for `courtyard serve` (a server reads
    # its revisions in a child process, core/revision_graph.py).
    from core.migrator import Migrator

    cli: CliContext = ctx.obj
    return cli, Migrator(cli.kernel)


@db_app.command()
def upgrade(
    ctx: typer.Context,
    plugins: Annotated[
        list[str] | None, typer.Argument(help="Only these plugins (default: every enabled one).")
    ] = None,
) -> None:
    """Upgrade the enabled plugins' branches to their heads.

    Safe to run from several processes at once: on PostgreSQL they take turns, and one that
    finds every branch at its head after its turn came upgrades none. A row of a plugin
    no longer installed is left alone, with a warning.
    """
    cli, migrator = _migrator(ctx)
    report = cli.run(
        migrator.upgrade_report(
            plugins or None,
            progress=lambda n: typer.echo(f"upgrading {n} → head"),
            waiting=_say_waiting,
        )
    )
    for line in _summary(report):
        typer.echo(line)
    if report.orphaned:
        _warn(orphan_advice(report.orphaned))


def _summary(report: Upgrade) -> list[str]:
    """`upgraded: auth (base → b41c7d2e0003)` and `already at head: user`: what moved (a
    branch a target depends on included), and which targets had nothing to do."""
    if not report.targets:
        return ["nothing to migrate (no enabled plugin has migrations)"]
    lines = []
    if report.moved:
        moves = [
            f"{now.plugin} ({was.current or 'base'} → {now.current})" for was, now in report.moved
        ]
        lines.append(f"upgraded: {', '.join(moves)}")
    if report.already_at_head:
        lines.append(f"already at head: {', '.join(report.already_at_head)}")
    return lines


def _say_waiting() -> None:
    """On stderr, so that stdout stays what the command did."""
    typer.echo("waiting for another migration of this database to finish…", err=True)


def _warn(message: str) -> None:
    typer.echo(f"courtyard: warning: {message}", err=True)


@db_app.command()
def downgrade(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="<plugin>@<revision>, <plugin>@base or <plugin>@-1")
    ],
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="Also downgrade the other plugins' branches that depend on the revisions "
            "removed (their tables are dropped too); refused without it.",
        ),
    ] = False,
) -> None:
    """Downgrade one plugin's branch."""
    cli, migrator = _migrator(ctx)
    for state in cli.run(migrator.downgrade(target, cascade=cascade, waiting=_say_waiting)):
        typer.echo(f"downgraded {state.plugin} → {state.current or 'base'}")
    typer.echo(f"downgraded to {target}")


@db_app.command()
def current(ctx: typer.Context) -> None:
    """Show where each plugin's branch stands in the database.

    A row of `alembic_version` that no installed plugin has (its plugin was uninstalled)
    is listed as `(not installed)`, `orphaned`, with what to do about it on stderr.
    """
    cli, migrator = _migrator(ctx)
    survey = cli.run(migrator.survey())
    rows = [
        [
            s.plugin,
            "yes" if s.enabled else "no",
            s.current or "-",
            s.head or "-",
            "at head" if s.at_head else "behind",
        ]
        for s in survey.branches
    ]
    rows += [["(not installed)", "-", row, "-", "orphaned"] for row in survey.orphaned]
    table(["PLUGIN", "ENABLED", "CURRENT", "HEAD", "STATE"], rows)
    if survey.orphaned:
        unowned = cli.run(migrator.unowned_tables())
        owned_by_none = (
            f" (tables no installed plugin owns: {', '.join(unowned)})" if unowned else ""
        )
        _warn(orphan_advice(survey.orphaned) + owned_by_none)


@db_app.command()
def history(
    ctx: typer.Context,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin's branch.")] = None,
) -> None:
    """List revisions, newest first."""
    _, migrator = _migrator(ctx)
    rows = [
        [owner, s.revision, _down(s.down_revision), s.doc or ""]
        for owner, s in migrator.history(plugin)
    ]
    table(["PLUGIN", "REVISION", "DOWN", "MESSAGE"], rows)


def _down(down_revision: str | Sequence[str] | None) -> str:
    """A revision's parents as shown in `db history` ("base" for a branch's first)."""
    if isinstance(down_revision, str):
        return down_revision
    return ", ".join(down_revision or ()) or "base"


@db_app.command()
def revision(
    ctx: typer.Context,
    plugin: Annotated[
        str, typer.Option("--plugin", help="The plugin whose branch gets the revision.")
    ],
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Compare the plugin's models with the database.")
    ] = False,
) -> None:
    """Write a new revision into one plugin's branch."""
    cli, migrator = _migrator(ctx)
    path = cli.run(migrator.revision(plugin, message, autogenerate=autogenerate))
    typer.echo(f"wrote {path}")
