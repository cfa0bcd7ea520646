"""`courtyard plugins`: what is installed, what is enabled, where each branch stands.

`courtyard plugins --check` validates every installed plugin instead, enabled or not, by
the rules startup applies (core.validation): one `ok` line per plugin without problems, a
`FAIL` line per problem, exit code 1 when there is any. Settings that turn on an
integration whose extra is not installed are one of them (`core.extras`): `FAIL upload:
invalid configuration: COURTYARD_UPLOAD__BACKEND=s3 needs the s3 extra (…): pip install
'courtyard[s3]'`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.cli.context import CliContext
from core.cli.output import table
from core.plugin import discover
from core.settings import CoreSettings
from core.validation import validate


def plugins_command(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Validate every installed plugin (enabled or not) without starting the "
            "server; exit code 1 when any has a problem.",
        ),
    ] = False,
) -> None:
    """List installed plugins: name, version, distribution, enabled, requires, migration head."""
    cli: CliContext = ctx.obj
    if check:
        _check(cli)
        return
    from core.migrator import Migrator  # Alembic, imported by the commands that use it

    kernel = cli.kernel
    heads = Migrator(kernel).heads()
    enabled = set(kernel.plugin_names)
    rows = []
    for item, plugin, error in kernel.installed_plugins():
        rows.append(
            [
                item.name,
                item.version or "-",
                item.distribution,
                "yes" if item.name in enabled else "no",
                ", ".join(plugin.requires) if plugin and plugin.requires else "-",
                heads.get(item.name, "-"),
                f"error: {error}" if error else "",
            ]
        )
    if not rows:
        typer.echo("No plugins installed (entry point group 'courtyard.plugins').")
        return
    table(["NAME", "VERSION", "DISTRIBUTION", "ENABLED", "REQUIRES", "MIGRATION HEAD", ""], rows)


def _check(cli: CliContext) -> None:
    # Not the kernel: a plugin that stops startup is exactly what this is to report.
    settings = cli._kernel.settings if cli._kernel is not None else CoreSettings.load()
    validation = validate(discover(), settings, references=True)
    if not validation.installed:
        typer.echo("No plugins installed (entry point group 'courtyard.plugins').")
        return
    for problem in validation.problems:
        if problem.plugin is None:  # the core's configuration: no plugin to blame
            raise problem.exception()
    for name, item in validation.installed.items():
        problems = validation.problems_of(name)
        if not problems:
            typer.echo(f"ok  {name} {item.version or '-'}")
        for problem in problems:
            typer.echo(f"FAIL {name}: {problem.reason}")
    if validation.problems:
        raise typer.Exit(1)
