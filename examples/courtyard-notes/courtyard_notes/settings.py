from pydantic import Field

from core.settings import PluginSettings

from courtyard_notes.api import BODY_MAX_LENGTH


class NotesSettings(PluginSettings):
    """`COURTYARD_NOTES__*`, or the `[notes]` table of `courtyard.toml`."""

    max_per_user: int = Field(
        1000, ge=1, description="Most live (not deleted) notes one user may keep."
    )
    max_body_length: int = Field(
        10_000,
        ge=1,
        le=BODY_MAX_LENGTH,
        description="Longest note body, in characters.",
    )
