from typing import Any

from dependency_injector import containers, providers

from core.db import Database
from plugins.oauth.registry import ProviderRegistry
from plugins.oauth.service import OAuthService
from plugins.oauth.settings import OAuthSettings


class OAuthContainer(containers.DeclarativeContainer):
    """Inputs come from the core and from the plugins it requires, each through their
    `api.py`; everything here lives as long as the app."""

    settings = providers.Dependency(instance_of=OAuthSettings)
    database = providers.Dependency(instance_of=Database)
    # From the `user` plugin: builds a `UserDirectory` on a session.
    user_directory: providers.Dependency[Any] = providers.Dependency()
    # From the `auth` plugin: builds a `SignIns` on a session.
    auth_sign_ins: providers.Dependency[Any] = providers.Dependency()

    # The configured providers, built on first use.
    registry = providers.Singleton(ProviderRegistry, settings=settings)
    service = providers.Singleton(
        OAuthService,
        settings=settings,
        database=database,
        directory=user_directory.provider,
        sign_ins=auth_sign_ins.provider,
        providers=registry,
    )
