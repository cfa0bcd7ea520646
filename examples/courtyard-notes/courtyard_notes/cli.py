"""`courtyard notes …`: looking at the notes from a shell."""

from __future__ import annotations

from typing import Any

import typer

from core.cli.context import CliContext
from core.cli.output import table

from courtyard_notes.repository import OwnerCount


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(name="notes", help="Inspect notes.", no_args_is_help=True)

    @cli.command("stats")
    def stats(ctx: typer.Context) -> None:
        """Notes per owner (live and soft-deleted), most first, and the totals."""

        async def counts() -> list[OwnerCount]:
            # A read session: no transaction, so it never waits for the app's writers.
            async with container.database().read_sessions() as session:
                found: list[OwnerCount] = await container.service(session=session).counts_by_owner()
                return found

        context: CliContext = ctx.obj
        rows = context.run(counts())
        live = sum(r.live for r in rows)
        deleted = sum(r.deleted for r in rows)
        table(
            ["OWNER", "NOTES", "DELETED"],
            [[r.owner_id, str(r.live), str(r.deleted)] for r in rows]
            + [["total", str(live), str(deleted)]],
        )

    return cli
