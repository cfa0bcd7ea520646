from typing import Any

from dependency_injector import containers, providers

from core.db import Database
from core.settings import CoreSettings
from plugins.auth.passwords import PasswordHasherService, PasswordPolicy
from plugins.auth.recovery import AccountRecovery
from plugins.auth.repository import revoked_sessions_loader
from plugins.auth.revocation import RevokedSessions
from plugins.auth.service import AuthService
from plugins.auth.settings import AuthSettings
from plugins.auth.sign_ins import SessionSignIns
from plugins.auth.throttle import ActionLimiter, LoginThrottle
from plugins.auth.tokens import AccessTokens, signing_key
from plugins.auth.windows import counters_url, open_windows


class AuthContainer(containers.DeclarativeContainer):
    """Inputs come from the core and the `user` and `mail` plugins; everything here lives
    as long as the app."""

    # What other plugins may take as inputs (`auth_sign_ins`: see api.py).
    published = ("sign_ins",)

    settings = providers.Dependency(instance_of=AuthSettings)
    core_settings = providers.Dependency(instance_of=CoreSettings)
    database = providers.Dependency(instance_of=Database)
    # From the `user` plugin (see its api.py): builds a `UserDirectory` on a session.
    user_directory: providers.Dependency[Any] = providers.Dependency()
    # From the `mail` plugin (see its api.py): the `Mailer` the reset and verification
    # mails go through.
    mail_mailer: providers.Dependency[Any] = providers.Dependency()

    signing_key = providers.Singleton(
        signing_key, settings=settings, secret_key=core_settings.provided.secret_key
    )
    tokens = providers.Singleton(AccessTokens, settings=settings, key=signing_key)
    hasher = providers.Singleton(PasswordHasherService, settings=settings)
    policy = providers.Singleton(PasswordPolicy, settings=settings)
    # The failed-login counters: in auth's own storage when one is given, else in the
    # instances' shared Redis (COURTYARD_REDIS_URL) when set, else in this process.
    rate_limit_storage = providers.Callable(
        counters_url,
        own=settings.provided.rate_limit_storage,
        shared=core_settings.provided.redis_url,
    )
    rate_limits = providers.Singleton(open_windows, url=rate_limit_storage)
    throttle = providers.Singleton(LoginThrottle, settings=settings, windows=rate_limits)
    revoked = providers.Singleton(
        RevokedSessions,
        loader=providers.Callable(revoked_sessions_loader, database=database),
        interval=settings.provided.revocation_check_interval,
        horizon=settings.provided.access_token_ttl,
    )
    service = providers.Singleton(
        AuthService,
        settings=settings,
        database=database,
        directory=user_directory.provider,
        hasher=hasher,
        policy=policy,
        tokens=tokens,
        revoked=revoked,
        throttle=throttle,
    )
    mail_limiter = providers.Singleton(ActionLimiter, settings=settings, windows=rate_limits)
    recovery = providers.Singleton(
        AccountRecovery,
        settings=settings,
        database=database,
        directory=user_directory.provider,
        auth=service,
        mailer=mail_mailer,
        limiter=mail_limiter,
    )
    # What other plugins sign users in with (`auth_sign_ins`, see api.py); needs `session=`:
    # the calling plugin's unit of work.
    sign_ins = providers.Factory(SessionSignIns, service=service)
