"""Sign-in with OAuth 2.0 / OpenID Connect providers, and linking them to accounts.

`config` holds the provider settings (read by `plugins.auth.settings`), `providers` speaks
to the providers, `flow` keeps the one-use flow state, `service` turns a proven provider
identity into a session or a link, and `routes` exposes it under `/api/v1/auth`. Importing
this package does nothing: providers are contacted on first use only.
"""
