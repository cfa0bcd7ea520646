"""The `courtyard` command. Plugins add command groups through `register_commands`."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from core import __version__
from core.cli.context import CliContext
from core.cli.db import db_app
from core.cli.new_plugin import new_plugin_command
from core.cli.plugins import plugins_command
from core.cli.serve import serve_command
from core.db.errors import is_database_unavailable
from core.errors import AppError
from core.kernel import Kernel
from core.settings import ConfigurationError

CORE_COMMANDS = frozenset({"serve", "plugins", "db", "new-plugin"})
# Typer's shell completion (`--install-completion [SHELL]`, `--show-completion [SHELL]`).
COMPLETION_OPTIONS = frozenset({"--install-completion", "--show-completion"})


def build_cli(context: CliContext) -> typer.Typer:
    """The command tree: core commands plus the enabled plugins' groups."""
    cli = typer.Typer(
        name="courtyard",
        help="Courtyard: a FastAPI modular monolith.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )

    @cli.callback()
    def root(
        ctx: typer.Context,
        show_version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Print the version and exit.",
                is_eager=True,
                callback=_print_version,
            ),
        ] = False,
    ) -> None:
        ctx.obj = context

    cli.command("serve")(serve_command)
    cli.command("plugins")(plugins_command)
    cli.command("new-plugin")(new_plugin_command)
    cli.add_typer(db_app)
    if context._kernel is not None:
        owners: dict[str, str] = {}
        for name, groups in context._kernel.collect("register_commands"):
            for group in groups:
                if not isinstance(group, typer.Typer):
                    raise ConfigurationError(
                        f"plugin {name!r}: register_commands returned a "
                        f"{type(group).__name__}, not a typer.Typer"
                    )
                group_name = group.info.name if isinstance(group.info.name, str) else name
                if group_name in CORE_COMMANDS:
                    raise ConfigurationError(
                        f"plugin {name!r} registers command {group_name!r}, which the core owns"
                    )
                if group_name in owners:
                    raise ConfigurationError(
                        f"plugins {owners[group_name]!r} and {name!r} both register the "
                        f"command group {group_name!r}"
                    )
                owners[group_name] = name
                cli.add_typer(group, name=group_name)
    return cli


def _first_command(argv: list[str]) -> str | None:
    if COMPLETION_OPTIONS & set(argv):
        return None  # `--show-completion bash`: the shell's name is no command
    return next((arg for arg in argv if not arg.startswith("-")), None)


def version_line() -> str:
    """`courtyard 0.1.0`: the version of the installed distribution (its metadata)."""
    try:
        return f"courtyard {version('courtyard')}"
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return f"courtyard {__version__}"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "--version" in args and _first_command(args) is None:
        # Before the kernel: the version is printed whatever the configuration says.
        typer.echo(version_line())
        return
    context: CliContext | None = None
    try:
        try:
            context = CliContext(Kernel.build())
        except ConfigurationError as exc:
            # Core commands report it when they need the kernel; --help still works.
            if _first_command(args) not in CORE_COMMANDS | {None}:
                raise
            context = CliContext(error=exc)
        build_cli(context)(args=args, prog_name="courtyard")
    except ConfigurationError as exc:
        _fail(str(exc))
    except AppError as exc:  # a command refused by a plugin's rules: unknown email, conflict…
        _fail(exc.detail, status=1)
    except (SQLAlchemyError, OSError) as exc:
        if is_database_unavailable(exc):
            _fail(f"cannot reach the database (COURTYARD_DATABASE_URL): {_first_line(exc)}")
        behind = _plugins_behind(context) if isinstance(exc, SQLAlchemyError) else []
        if not behind:
            raise
        _fail(
            f"the database is not migrated for {', '.join(behind)}: run `courtyard db upgrade` "
            f"({_first_line(exc)})"
        )


def _plugins_behind(context: CliContext | None) -> list[str]:
    """The enabled plugins whose branch is behind, when a command failed on the database (a
    table it needs is missing, say); empty when that cannot be told."""
    if context is None:
        return []
    from core.migrator import Migrator  # Alembic only on this path

    try:
        return context.run(Migrator(context.kernel).survey()).behind
    except Exception:  # the original error is the one to show then
        return []


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def _fail(message: str, *, status: int = 2) -> None:
    typer.echo(f"courtyard: error: {message}", err=True)
    sys.exit(status)
