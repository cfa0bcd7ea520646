"""The `auth` plugin (in progress): passwords, JWT access tokens, rotating refresh tokens.

Not registered as an entry point yet: the password and token building blocks are here and
tested; the tables, routes, sessions and throttling follow.
"""
