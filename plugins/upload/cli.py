"""`courtyard uploads …`: housekeeping for operators."""

from __future__ import annotations

from typing import Any

import typer

from core.cli.context import CliContext
from plugins.upload.schemas import PurgeResult


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(name="uploads", help="Uploaded files.", no_args_is_help=True)

    @cli.command("purge")
    def purge(ctx: typer.Context) -> None:
        """Delete pending uploads that were never completed in time, and their files."""
        context: CliContext = ctx.obj
        service = container.service()

        async def run() -> tuple[int, PurgeResult]:
            try:
                total = await service.expired_count()
                with typer.progressbar(length=total, label="purging", file=None) as bar:
                    result = await service.purge(progress=bar.update)
                return total, result
            finally:
                await container.storage().close()

        _, result = context.run(run())
        noun = "upload" if result.uploads == 1 else "uploads"
        typer.echo(f"purged {result.uploads} expired {noun} ({result.bytes} bytes)")

    return cli
