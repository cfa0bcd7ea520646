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
        """A deleted user's notes are hidden with it: soft-deleted, marked `hidden_by`."""
        await self.container.service().hide_all_of(user_id)

    @hookimpl
    async def user_restored(self, user_id: str) -> None:
        """A restored user gets back the notes its deletion hid; the notes the user had
        deleted before stay deleted."""
        await self.container.service().unhide_all_of(user_id)
