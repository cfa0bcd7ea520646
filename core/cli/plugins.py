"""`courtyard plugins`: what is installed, what is enabled, where each branch stands."""

from __future__ import annotations

import typer

from core.cli.context import CliContext
from core.cli.output import table
from core.migrator import Migrator


def plugins_command(ctx: typer.Context) -> None:
    """List installed plugins: name, version, distribution, enabled, requires, migration head."""
    cli: CliContext = ctx.obj
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
