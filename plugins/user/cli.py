"""`courtyard users …`: account administration from a shell (e.g. to make the first admin)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from core.cli.context import CliContext
from core.cli.output import table
from core.db import PageParams
from plugins.user.api import User
from plugins.user.schemas import UserFilter
from plugins.user.service import UserService

T = TypeVar("T")

PAGE = 100


def build_cli(container: Any) -> typer.Typer:
    cli = typer.Typer(name="users", help="Manage user accounts.", no_args_is_help=True)

    def run(ctx: typer.Context, work: Callable[[UserService], Coroutine[Any, Any, T]]) -> T:
        """Run `work` with the service (each of its calls one transaction)."""
        context: CliContext = ctx.obj
        return context.run(work(container.service()))

    @cli.command("list")
    def list_users(
        ctx: typer.Context,
        q: Annotated[str | None, typer.Option(help="Email prefix or name substring.")] = None,
        role: Annotated[str | None, typer.Option(help="Only 'user' or 'admin'.")] = None,
        include_deleted: Annotated[bool, typer.Option(help="Show soft-deleted users.")] = False,
    ) -> None:
        """List users, newest first."""
        if role not in (None, "user", "admin"):
            raise typer.BadParameter("use 'user' or 'admin'", param_hint="--role")
        where = UserFilter(q=q, role=role, include_deleted=include_deleted)

        async def every_user(users: UserService) -> list[User]:
            found: list[User] = []
            cursor = None
            while True:
                page = await users.list(where, PageParams(limit=PAGE, cursor=cursor))
                found += page.items
                if page.next_cursor is None:
                    return found
                cursor = page.next_cursor

        rows = run(ctx, every_user)
        table(
            ["id", "email", "name", "role", "active", "verified", "deleted"],
            [
                [
                    u.id,
                    u.email,
                    u.name,
                    u.role,
                    _yes(u.is_active),
                    _yes(u.email_verified),
                    u.deleted_at.isoformat(timespec="seconds") if u.deleted_at else "",
                ]
                for u in rows
            ],
        )

    @cli.command("create")
    def create(
        ctx: typer.Context,
        email: str,
        name: Annotated[str, typer.Option(help="Display name.")],
        admin: Annotated[bool, typer.Option("--admin", help="Create an admin.")] = False,
    ) -> None:
        """Create an account."""
        user = run(ctx, lambda users: users.create(email, name, "admin" if admin else "user"))
        typer.echo(f"created {user.role} {user.email} ({user.id})")

    @cli.command("stats")
    def stats(ctx: typer.Context) -> None:
        """Count live users: all, and those created since 00:00 UTC on the 1st of this
        month, on Monday of this week and today (as GET /api/v1/users/stats)."""
        counts = run(ctx, lambda users: users.count_members())
        fields = counts.model_dump()
        table(list(fields), [[str(value) for value in fields.values()]])

    def change(verb: str, changes: dict[str, Any]) -> Callable[[typer.Context, str], None]:
        def command(ctx: typer.Context, email: str) -> None:
            user = run(ctx, lambda users: users.update_by_email(email, changes))
            typer.echo(f"{verb} {user.email}: role {user.role}, {_active(user)}")

        return command

    cli.command("promote", help="Make the user with EMAIL an admin.")(
        change("promoted", {"role": "admin"})
    )
    cli.command("demote", help="Make the admin with EMAIL a plain user.")(
        change("demoted", {"role": "user"})
    )
    cli.command("deactivate", help="Stop the user with EMAIL from acting (reversible).")(
        change("deactivated", {"is_active": False})
    )
    cli.command("activate", help="Let a deactivated user with EMAIL act again.")(
        change("activated", {"is_active": True})
    )
    return cli


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _active(user: User) -> str:
    return "active" if user.is_active else "inactive"
