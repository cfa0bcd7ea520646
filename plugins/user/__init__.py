"""The `user` plugin: user accounts, profiles, administration, soft delete and user events.

It owns user records and nothing about proving identity (passwords and tokens belong to
an authentication plugin such as `auth`). Other plugins use it only through `api.py`.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="user",
    package=__name__,
    version="0.1.0",
    core_version=">=0.1,<1",
    description="User accounts: profiles, administration, soft delete and user events.",
    prefix="users",
    tag="users",
    settings="settings:UserSettings",
    container="container:UserContainer",
    router="router:build_router",
    models="models",
    hooks="hooks:UserHooks",
    hookspecs="hookspecs",
    migrations="migrations/versions",
)
