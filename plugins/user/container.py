from typing import Any

from dependency_injector import containers, providers

from core.db import Database
from plugins.user.accounts import AccountReads
from plugins.user.service import UserService
from plugins.user.settings import UserSettings


class UserContainer(containers.DeclarativeContainer):
    """Inputs come from the core; `directory` is what other plugins use (see `api.py`)."""

    settings = providers.Dependency(instance_of=UserSettings)
    database = providers.Dependency(instance_of=Database)
    hooks: providers.Dependency[Any] = providers.Dependency()

    # Both need `session=`: the request's session, or the calling plugin's.
    service = providers.Factory(UserService, settings=settings, hooks=hooks)
    directory = providers.Factory(UserService, settings=settings, hooks=hooks, autocommit=False)
    # Session-less reads for hot paths (see `api.AccountReader`).
    accounts = providers.Singleton(AccountReads, database=database)
