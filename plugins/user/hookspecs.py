"""Events the `user` plugin publishes. Implement them with `@hookimpl` to react.

Each fires once, after the transaction that made the change has committed, so a listener
never sees uncommitted data and can read the change from the database; a change rolled
back (transaction or savepoint) fires nothing. A listener may be
async. If it raises, the error is logged with the request id and the plugin's name, the
other listeners still run, and the change stands.
"""

from __future__ import annotations

from typing import Any

from core.hookspecs import hookspec
from plugins.user.api import User


@hookspec
def user_created(user: User) -> None:
    """A user was created (by an admin, the CLI, or another plugin such as `auth`)."""


@hookspec
def user_updated(user: User, changes: dict[str, Any]) -> None:
    """A user changed; `changes` maps each changed field to its new value."""


@hookspec
def user_deleted(user_id: str) -> None:
    """A user was soft-deleted; remove or hide what you keep for them."""


@hookspec
def user_restored(user_id: str) -> None:
    """A soft-deleted user was restored."""
