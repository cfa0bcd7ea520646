"""The `oauth` plugin: sign-in with OAuth 2.0 / OpenID Connect providers (any OpenID
Connect provider, or GitHub), and linking them to accounts.

It proves who the user is at a provider and keeps the links (`oauth_identity`) and the
flows in progress (`oauth_flow`); accounts are the `user` plugin's and sessions the `auth`
plugin's, reached through their `api.py`. Its routes stay under `/api/v1/auth/oauth`, the
URLs the providers have registered. Disable it and password sign-up and sign-in work on.

`config` holds the provider settings (read by `settings`), `providers` and `oidc` speak to
the providers, `flow` keeps the one-use flow state, `service` turns a proven provider
account into a session or a link, and `router` exposes it. Importing this package does
nothing: providers are contacted on first use only.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="oauth",
    package=__name__,
    version="0.1.0",
    core_version=">=0.1,<1",
    requires=("auth", "user"),
    description="Sign-in with OAuth 2.0 / OpenID Connect providers and GitHub, and "
    "providers linked to accounts.",
    prefix="auth/oauth",
    tag="oauth",
    settings="settings:OAuthSettings",
    container="container:OAuthContainer",
    router="router:build_router",
    models="models",
    migrations="migrations/versions",
)
