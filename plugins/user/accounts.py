"""`AccountReads`: the account reads of every authenticated request and every sign-in, as
Core statements outside any ORM session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database, StatementTarget, is_valid_id
from plugins.user.api import EMAIL_MAX_LENGTH, USER_ID_PREFIX, User
from plugins.user.models import email_key
from plugins.user.repository import account_statements
from plugins.user.schemas import has_control_characters


class AccountReads:
    """Implements `api.AccountReader`. Reads come from the primary (replication lag must
    not delay a deactivation) or from the caller's transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def active(self, user_id: str, *, within: AsyncConnection | None = None) -> User | None:
        return await active_account(self._on(within), user_id)

    async def live(self, user_id: str, *, within: AsyncConnection | None = None) -> User | None:
        if not is_valid_id(user_id, USER_ID_PREFIX):
            return None
        return _user(await account_statements().live.first(self._on(within), user_id=user_id))

    async def live_by_email(
        self, email: str, *, within: AsyncConnection | None = None
    ) -> User | None:
        key = self.email_key(email)
        if key is None:
            return None  # never stored, so no need to ask
        return _user(
            await account_statements().live_by_email.first(self._on(within), email_key=key)
        )

    # For statements of other plugins that read the account along with rows of their own

    def email_key(self, email: str) -> str | None:
        if len(email) > EMAIL_MAX_LENGTH or has_control_characters(email):
            return None
        return email_key(email)

    def select_live_by_email(self) -> Any:
        return account_statements().live_by_email_select

    def select_active_shared(self) -> Any:
        return account_statements().active_shared_select

    def user(self, fields: Mapping[str, Any]) -> User:
        return User.model_validate(fields)

    def _on(self, within: AsyncConnection | None) -> StatementTarget:
        return within if within is not None else self.database.primary_read_engine


async def active_account(target: StatementTarget, user_id: str) -> User | None:
    """The user if it is live and active, read on `target` (an engine, an `AsyncConnection`,
    or a session's transaction); None otherwise, a malformed id included."""
    if not is_valid_id(user_id, USER_ID_PREFIX):
        return None
    return _user(await account_statements().active.first(target, user_id=user_id))


def _user(fields: Mapping[str, Any] | None) -> User | None:
    return User.model_validate(fields) if fields is not None else None
