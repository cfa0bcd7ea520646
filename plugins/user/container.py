from typing import Any

from dependency_injector import containers, providers

from core.db import Database, utcnow
from plugins.user.directory import AccountDirectory
from plugins.user.repository import PrimaryAccounts
from plugins.user.service import UserService
from plugins.user.settings import UserSettings


class UserContainer(containers.DeclarativeContainer):
    """Inputs come from the core. `directory` and `accounts` are what other plugins use
    (as their `user_directory` and `user_accounts` inputs, see `api.py`)."""

    # What other plugins may take as inputs (`user_directory`, `user_accounts`: see api.py).
    published = ("directory", "accounts")

    settings = providers.Dependency(instance_of=UserSettings)
    database = providers.Dependency(instance_of=Database)
    hooks: providers.Dependency[Any] = providers.Dependency()

    # What "now" is for the member statistics; tests replace it to count at chosen instants.
    clock = providers.Object(utcnow)
    service = providers.Singleton(
        UserService, database=database, settings=settings, hooks=hooks, clock=clock
    )
    # Needs `session=`: the calling plugin's unit of work.
    directory = providers.Factory(AccountDirectory, settings=settings, hooks=hooks)
    # The per-request account check, outside any session.
    accounts = providers.Singleton(PrimaryAccounts, database=database)
