"""`courtyard plugins`: what is installed, what is enabled, where each branch stands.

`courtyard plugins --check` validates every installed plugin instead (core.plugin_check):
one `ok` or `FAIL` line per plugin or problem, exit code 1 when any plugin fails.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.cli.context import CliContext
from core.cli.output import table
from core.migrator import Migrator
from core.plugin_check import check_plugins
from core.settings import CoreSettings


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
    reports = check_plugins(settings)
    if not reports:
        typer.echo("No plugins installed (entry point group 'courtyard.plugins').")
        return
    for report in reports:
        if report.ok:
            typer.echo(f"ok  {report.name} {report.version or '-'}")
        for problem in report.problems:
            typer.echo(f"FAIL {report.name}: {problem}")
    if not all(report.ok for report in reports):
        raise typer.Exit(1)
