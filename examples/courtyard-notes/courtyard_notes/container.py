from typing import Any

from dependency_injector import containers, providers

from core.db import Database

from courtyard_notes.service import NoteService
from courtyard_notes.settings import NotesSettings


class NotesContainer(containers.DeclarativeContainer):
    """Inputs come from the core, by name. `service` is built once and opens a session of
    its own for each call: routes, hooks and commands all use it as it is."""

    settings = providers.Dependency(instance_of=NotesSettings)
    database = providers.Dependency(instance_of=Database)
    hooks: providers.Dependency[Any] = providers.Dependency()
    # The `user` plugin's `directory` (a `plugins.user.api.UserDirectory` per unit of work):
    # this plugin lists "user" in `requires`, and the core connects the input by its name.
    user_directory: providers.Dependency[Any] = providers.Dependency()

    service = providers.Singleton(
        NoteService,
        database=database,
        settings=settings,
        hooks=hooks,
        users=user_directory.provider,  # the provider itself: called with `session=`
    )
