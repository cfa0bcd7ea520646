"""The hooks the `notes` plugin implements: a CLI group, and the `user` plugin's events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.hookspecs import hookimpl

if TYPE_CHECKING:
    import typer


class NotesHooks:
    """Built once per app with the plugin's container."""

    def __init__(self, container: Any) -> None:
        self.container = container

    @hookimpl
    def register_commands(self) -> list[typer.Typer]:
        # Imported here: the command line's libraries stay out of the server's start-up.
        from courtyard_notes.cli import build_cli

        return [build_cli(self.container)]

    @hookimpl
    async def user_deleted(self, user_id: str) -> None:
        """A deleted user's notes are soft-deleted with it: hidden, but not destroyed.

        Restoring the user does not bring them back (the plugin cannot tell them from notes
        the user had deleted before); the rows stay in `notes_note` for an operator.
        """
        await self.container.service().delete_all_of(user_id)
