"""`courtyard auth …`: an operator's tools for accounts that need help."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from core.cli.context import CliContext


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(name="auth", help="Passwords and sessions.", no_args_is_help=True)

    @cli.command("revoke-sessions")
    def revoke_sessions(ctx: typer.Context, email: str) -> None:
        """End every session of the user with EMAIL (their tokens stop working)."""
        context: CliContext = ctx.obj
        user, count = context.run(container.service().revoke_sessions_of(email))
        typer.echo(f"revoked {count} session{'' if count == 1 else 's'} of {user.email}")

    @cli.command("set-password")
    def set_password(
        ctx: typer.Context,
        email: str,
        password: Annotated[
            str | None,
            typer.Option(
                help="Asked for when not given (typed without echo). Prefer the prompt: "
                "a password on the command line lands in the shell history.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Set the password of the user with EMAIL and end all of their sessions."""
        context: CliContext = ctx.obj
        if password is None:
            # Asked only once the account is known to exist: a typo in EMAIL fails at once,
            # not after the new password was typed twice.
            context.run(container.service().account_by_email(email))
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        user = context.run(container.service().set_password(email, password))
        typer.echo(f"password set for {user.email}; every session of theirs has ended")

    return cli
