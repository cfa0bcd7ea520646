"""A password sign-in in two round trips on PostgreSQL: one read before the hash, one
statement after it.

Done statement by statement, a sign-in makes eight round trips (the account, the
credential; then BEGIN, the credential's lock, the account read again under it, the
inserts, COMMIT). Each is a wake-up of the event loop while argon2 has the CPU, and on a
busy worker every wake-up finds the caches emptied by the hash: that, more than the SQL,
is what a sign-in costs besides the hash. Here:

- `account_and_credential`: the account (the `user` plugin's select, embedded) and its
  credential, one read.
- `open_session`: one statement that shares-locks the credential as it was checked (same
  `changed_at`) and the account as live and active (the `user` plugin's FOR SHARE select),
  and only if both hold inserts the session and its first refresh token; it answers the
  account as it is now, or nothing.

Why one statement is as safe as the transaction it replaces: PostgreSQL reads a row it
locks again once the lock is granted and re-checks the conditions on its latest version,
so a password change, a deactivation or a deletion that committed while the statement
waited (or before) makes it insert nothing. One that comes later waits for the row lock,
and the session revocation that follows it (which takes the credential lock, FOR UPDATE)
finds the new session and revokes it. Nothing else locks an account row and then a
credential in one transaction, so the two locks cannot deadlock; two sign-ins of the same
account share both locks and do not queue behind each other.

Other databases (SQLite: no data-modifying WITH) keep the statement-by-statement path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, true
from sqlmodel import col

from core.db import CoreStatement, StatementTarget
from plugins.auth.models import AuthSession, Credential, RefreshToken
from plugins.auth.repository import StoredCredential
from plugins.user.api import AccountReader, User


class SignInStatements:
    """Built once per `AccountReader` (building them costs more than running them)."""

    def __init__(self, accounts: AccountReader) -> None:
        self.accounts = accounts
        self._read = CoreStatement(_account_and_credential(accounts))
        self._open = CoreStatement(_open_session(accounts))

    async def account_and_credential(
        self, target: StatementTarget, email: str
    ) -> tuple[User | None, StoredCredential | None]:
        """The live account (active or not) with this email and its credential, if any."""
        key = self.accounts.email_key(email)
        if key is None:
            return None, None
        row = await self._read.first(target, email_key=key)
        if row is None:
            return None, None
        credential = None
        if row["password_hash"] is not None:
            credential = StoredCredential(row["password_hash"], row["changed_at"])
        return self.accounts.user(row), credential

    async def open_session(
        self,
        target: StatementTarget,
        *,
        checked: StoredCredential,
        session: Mapping[str, Any],
        token: Mapping[str, Any],
    ) -> User | None:
        """Insert `session` and its first refresh `token` if the account is still live and
        active and its password still the one `checked`; the account as it is now, or None
        (and nothing inserted)."""
        row = await self._open.first(
            target,
            user_id=session["user_id"],
            changed_at=checked.changed_at,
            session_id=session["id"],
            now=session["created_at"],
            expires_at=session["expires_at"],
            user_agent=session["user_agent"],
            ip=session["ip"],
            token_id=token["id"],
            token_hash=token["token_hash"],
            token_issued_at=token["issued_at"],
        )
        return self.accounts.user(row) if row is not None else None


def _account_and_credential(accounts: AccountReader) -> Any:
    account = accounts.select_live_by_email().subquery("account")
    return select(account, col(Credential.password_hash), col(Credential.changed_at)).select_from(
        account.outerjoin(Credential, col(Credential.user_id) == account.c.id)
    )


def _open_session(accounts: AccountReader) -> Any:
    account = accounts.select_active_shared().cte("account")
    credential = (
        select(col(Credential.user_id))
        .where(
            col(Credential.user_id) == bindparam("user_id"),
            col(Credential.changed_at) == bindparam("changed_at"),
        )
        .with_for_update(read=True)
        .cte("credential")
    )
    sessions: Table = AuthSession.__table__  # type: ignore[attr-defined]
    new_session = (
        insert(sessions)
        .from_select(
            ["id", "user_id", "created_at", "last_used_at", "expires_at", "user_agent", "ip"],
            select(
                _param(sessions, "id", "session_id"),
                credential.c.user_id,
                _param(sessions, "created_at", "now"),
                _param(sessions, "last_used_at", "now"),
                _param(sessions, "expires_at"),
                _param(sessions, "user_agent"),
                _param(sessions, "ip"),
            ).select_from(credential.join(account, account.c.id == credential.c.user_id)),
        )
        .returning(sessions.c.id)
        .cte("new_session")
    )
    tokens: Table = RefreshToken.__table__  # type: ignore[attr-defined]
    new_token = insert(tokens).from_select(
        ["id", "session_id", "token_hash", "issued_at"],
        select(
            _param(tokens, "id", "token_id"),
            new_session.c.id,
            _param(tokens, "token_hash"),
            _param(tokens, "issued_at", "token_issued_at"),
        ),
    )
    return (
        select(account).join_from(account, new_session, true()).add_cte(new_token.cte("new_token"))
    )


def _param(table: Table, column: str, name: str | None = None) -> Any:
    """A bound parameter typed as `table.column`, so the driver is told its type."""
    return bindparam(name or column, type_=table.c[column].type)
