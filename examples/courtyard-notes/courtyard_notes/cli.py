"""`courtyard notes …`: looking at the notes from a shell."""

from __future__ import annotations

from typing import Any

import typer

from core.cli.context import CliContext
from core.cli.output import table

from courtyard_notes.service import NoteService


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(name="notes", help="Inspect notes.", no_args_is_help=True)

    @cli.command("stats")
    def stats(ctx: typer.Context) -> None:
        """Notes per owner (live and soft-deleted), most first, and the totals."""
        context: CliContext = ctx.obj
        notes: NoteService = container.service()
        rows = context.run(notes.counts_by_owner())
        live = sum(r.live for r in rows)
        deleted = sum(r.deleted for r in rows)
        table(
            ["OWNER", "NOTES", "DELETED"],
            [[r.owner_id, str(r.live), str(r.deleted)] for r in rows]
            + [["total", str(live), str(deleted)]],
        )

    return cli
