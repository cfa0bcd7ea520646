"""The `auth` plugin: passwords, JWT access tokens, rotating refresh tokens, sessions,
throttling. It proves who the caller is (the core's `authenticate` hook) and keeps no
account data of its own: accounts are the `user` plugin's, reached through its `api.py`.
Its mails (password reset, email verification) leave through the `mail` plugin's mailer.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="auth",
    package=__name__,
    version="0.1.0",
    core_version=">=0.1,<1",
    requires=("user", "mail"),
    description="Sign-up and sign-in: passwords, access and refresh tokens, sessions.",
    prefix="auth",
    tag="auth",
    settings="settings:AuthSettings",
    container="container:AuthContainer",
    router="router:build_router",
    models="models",
    hooks="hooks:AuthHooks",
    migrations="migrations/versions",
)
