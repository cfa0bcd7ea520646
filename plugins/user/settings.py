from pydantic import Field

from core.settings import PluginSettings


class UserSettings(PluginSettings):
    """`COURTYARD_USER__*`, or the `[user]` table of `courtyard.toml`."""

    max_name_length: int = Field(
        100, ge=1, le=200, description="Longest display name a user may set, in characters."
    )
