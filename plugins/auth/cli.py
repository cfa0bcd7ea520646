"""`courtyard auth …`: an operator's tools: the first admin, and accounts that need help."""

from __future__ import annotations

from typing import Annotated, Any, TextIO

import typer

from core.cli.context import CliContext
from core.errors import InvalidInputError
from plugins.auth.admins import check_new_admin, create_admin


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(
        name="auth", help="The first admin, passwords and sessions.", no_args_is_help=True
    )

    @cli.command("create-admin")
    def create_admin_command(
        ctx: typer.Context,
        email: str,
        name: Annotated[str, typer.Option(help="Display name.")],
        password_stdin: Annotated[
            bool,
            typer.Option(
                "--password-stdin",
                help="Read the password from the first line of standard input (for "
                "scripts) instead of asking for it.",
            ),
        ] = False,
    ) -> None:
        """Create an admin with EMAIL, verified, who signs in at once with the password
        given (asked for twice, typed without echo, unless --password-stdin)."""
        context: CliContext = ctx.obj
        auth = container.service()
        # Refused before the password is asked for: an email in use, a malformed address
        # or name fails at once, not after the password was typed twice.
        context.run(check_new_admin(auth, email, name))
        if password_stdin:
            password = _first_line(typer.get_text_stream("stdin"))
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        admin = context.run(create_admin(auth, email, name, password))
        typer.echo(f"created admin {admin.email} ({admin.id}), email verified; it can sign in")

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


def _first_line(stream: TextIO) -> str:
    """The first line of `stream` without its line ending (refused when empty: the policy's
    length message would not say that nothing was read)."""
    line = stream.readline().removesuffix("\n").removesuffix("\r")
    if not line:
        raise InvalidInputError("password", "standard input (--password-stdin) holds none")
    return line
