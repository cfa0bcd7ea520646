"""The `notes` plugin: notes that belong to users, with tags, soft delete and an event.

An example of a third-party Courtyard plugin, shipped as its own distribution. It imports
only `core` and the `user` plugin's public `api` module; everything else is its own.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="notes",
    package=__name__,  # `version` left out: the distribution's (pyproject.toml) is shown
    description="Private notes with tags, owned by users.",
    core_version=">=0.1,<1",  # the Courtyard core releases this plugin is known to work with
    requires=("user",),  # notes reference `user.id`, show authors, follow user events
    settings="settings:NotesSettings",
    container="container:NotesContainer",
    router="router:build_router",
    models="models",
    hooks="hooks:NotesHooks",
    hookspecs="hookspecs",
    migrations="migrations/versions",
)
