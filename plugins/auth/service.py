"""Signing in and staying signed in: credentials, sessions and token rotation.

The service opens its own sessions rather than taking the request's, because where each
transaction starts and ends is part of the security design: argon2 runs between
transactions (on SQLite a write transaction holds the database's only write lock), a
refresh is one short transaction that spends its token atomically, and revocations reach
the in-process revocation set only after they have committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from core.caller import act_for
from core.db import AppSession, Database, Page, PageParams, is_valid_id, new_id, utcnow
from core.errors import ForbiddenError, NotFoundError, UnauthorizedError
from plugins.auth.api import Client, SignedIn, Tokens, invalid_credentials
from plugins.auth.models import (
    IP_MAX_LENGTH,
    REFRESH_TOKEN_ID_PREFIX,
    SESSION_ID_PREFIX,
    USER_AGENT_MAX_LENGTH,
    AuthSession,
)
from plugins.auth.passwords import PasswordHasherService, PasswordPolicy
from plugins.auth.repository import AuthRepository, StoredCredential
from plugins.auth.revocation import RevokedSessions
from plugins.auth.schemas import AccountCreated, SessionInfo
from plugins.auth.settings import AuthSettings
from plugins.auth.throttle import LoginThrottle
from plugins.auth.tokens import AccessTokens, new_opaque_token, opaque_token_hash
from plugins.user.api import User, UserDirectory

logger = logging.getLogger("courtyard.auth")

DirectoryFactory = Callable[..., UserDirectory]
CredentialCheck = Callable[[AppSession, StoredCredential | None], Awaitable[None]]


def invalid_refresh_token() -> UnauthorizedError:
    return UnauthorizedError(
        "The refresh token is invalid, expired or already used; sign in again",
        code="auth.invalid_refresh_token",
    )


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        database: Database,
        directory: DirectoryFactory,
        hasher: PasswordHasherService,
        policy: PasswordPolicy,
        tokens: AccessTokens,
        revoked: RevokedSessions,
        throttle: LoginThrottle,
    ) -> None:
        self.settings = settings
        self.database = database
        self.directory = directory
        self.hasher = hasher
        self.policy = policy
        self.tokens = tokens
        self.revoked = revoked
        self.throttle = throttle

    # Signing in

    async def signup(
        self, email: str, password: str, name: str, client: Client
    ) -> SignedIn | AccountCreated:
        """A new account with its password and a first session; 409 when the email is taken.
        When verified emails are required, no session: the account signs in once verified."""
        self.policy.check(password)
        password_hash = await self.hasher.hash(password)
        async with self.database.write_sessions() as session:
            user = await self.directory(session=session).create(email, name)
            await AuthRepository(session).store_password(
                user.id, password_hash, utcnow(), locked=None
            )
            tokens = None
            if not self.settings.require_verified_email:
                tokens = await self._open_session(session, user, client)
            await session.commit()
        if tokens is None:
            return AccountCreated(user=user)
        return SignedIn(user=user, **tokens.model_dump())

    async def login(self, email: str, password: str, client: Client) -> SignedIn:
        """Tokens for the right email and password of an active account; the same 401 for
        every other case, after the same amount of work."""
        self.policy.check_length(password)
        # A caller over a limit is refused before any database work. The attempt is
        # counted only once the account is read, so a sign-in the database cannot answer
        # (503) counts for nothing and an outage locks nobody out once it is over; it is
        # still counted before the password is checked, so parallel guesses cannot
        # outrun the limit.
        await self.throttle.check(email, client.ip)
        user, credential = await self._account(email=email)
        await self.throttle.attempt(email, client.ip)
        if user is None or credential is None:
            await self.hasher.verify_dummy(password)
            ok = False
        else:
            ok = await self.hasher.verify(credential.password_hash, password)
        if not ok or user is None or credential is None or not user.is_active:
            raise invalid_credentials()
        if self.settings.require_verified_email and not user.email_verified:
            # Only after the password proved the caller owns the account, so this tells a
            # stranger nothing.
            raise ForbiddenError(
                "Verify your email address before signing in", code="auth.email_not_verified"
            )
        # The owner proved the password: their account's count is cleared now, so a session
        # the database then fails to open (503) leaves no failure behind either.
        await self.throttle.succeeded(email)
        rehashed = None
        if self.hasher.needs_rehash(credential.password_hash):
            rehashed = await self.hasher.hash(password)
        user, tokens = await self._open_password_session(user, credential, rehashed, client)
        return SignedIn(user=user, **tokens.model_dump())

    async def refresh(self, refresh_token: str) -> Tokens:
        """A new pair for a valid refresh token, which is spent. A spent token presented
        again (after `refresh_reuse_grace`) means it was copied: the session is revoked."""
        now = utcnow()
        async with self.database.write_sessions() as session:
            repo = AuthRepository(session)
            found = await repo.refresh_token(opaque_token_hash(refresh_token))
            if found is None:
                raise invalid_refresh_token()
            token, auth_session = found
            if not _live(auth_session, now):
                raise invalid_refresh_token()
            if token.used_at is not None:
                if now - token.used_at < timedelta(seconds=self.settings.refresh_reuse_grace):
                    # Spent a moment ago: a concurrent refresh with the same token that had
                    # to wait for the first one (SQLite serialises writers). Not theft.
                    raise invalid_refresh_token()
                await self._revoke(session, auth_session.user_id, only=auth_session.id)
                await session.commit()
                logger.warning(
                    "refresh token reuse: session %s of user %s revoked",
                    auth_session.id,
                    auth_session.user_id,
                )
                raise invalid_refresh_token()
            user = await self.directory(session=session).active_account(auth_session.user_id)
            if user is None:
                raise invalid_refresh_token()
            secret, successor = _refresh_token_for(auth_session.id, now)
            rows = AuthRepository(session)
            if not await rows.spend(token.id, successor["id"], now):
                # A concurrent refresh with the same token won (PostgreSQL re-checked the
                # row after it committed); this one gets nothing. Not theft, as above.
                raise invalid_refresh_token()
            await rows.add_refresh_token(successor)
            await rows.touch(auth_session.id, now)
            await session.commit()
        return self._tokens(user, auth_session.id, auth_session.expires_at, secret)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the session the refresh token belongs to (spent or not). Unknown tokens
        are ignored, as RFC 7009 asks: the answer says nothing about a token's validity."""
        async with self.database.write_sessions() as session:
            repo = AuthRepository(session)
            found = await repo.refresh_token(opaque_token_hash(refresh_token))
            if found is not None:
                _, auth_session = found
                await self._revoke(session, auth_session.user_id, only=auth_session.id)
                await session.commit()

    # The caller's own account

    async def change_password(
        self, user_id: str, session_id: str | None, current: str, new: str, client: Client
    ) -> None:
        """Replace the password after checking the current one; every other session ends.
        Throttled like a login, so a stolen access token cannot guess the password."""
        self.policy.check_length(current, field="current_password")
        user, credential = await self._account(user_id=user_id)
        if user is None or credential is None:
            raise _wrong_password()
        # The same count as the account's logins: one budget of guesses, however asked.
        await self.throttle.attempt(user.email, client.ip)
        if not await self.hasher.verify(credential.password_hash, current):
            raise _wrong_password()
        await self.throttle.succeeded(user.email)
        self.policy.check(new, field="new_password")
        await self._set_password(
            user_id, await self.hasher.hash(new), keep=session_id, unless_changed_since=credential
        )

    async def account_by_email(self, email: str) -> User:
        """The live account with `email` (read on the primary); the user plugin's 404 when
        there is none. For an operator's commands, which name accounts by email."""
        async with self.database.primary_read_sessions() as session:
            user: User = await self.directory(session=session).get_by_email(email)
        return user

    async def set_password(self, email: str, password: str) -> User:
        """An operator's reset (CLI): the new password, and every session of the user ends."""
        self.policy.check(password)
        user = await self.account_by_email(email)
        await self._set_password(user.id, await self.hasher.hash(password), keep=None)
        return user

    async def sessions(
        self, user_id: str, current: str | None, page: PageParams
    ) -> Page[SessionInfo]:
        async with self.database.primary_read_sessions() as session:
            rows = await AuthRepository(session).active_sessions(
                user_id, utcnow(), limit=page.limit, cursor=page.cursor
            )
        items = [_session_info(row, current) for row in rows[: page.limit]]
        next_cursor = items[-1].id if len(rows) > page.limit else None
        return Page[SessionInfo](items=items, next_cursor=next_cursor)

    async def revoke_session(self, user_id: str, session_id: str) -> None:
        """End one of the user's sessions; 404 for a session that is not theirs."""
        async with self.database.write_sessions() as session:
            found = (
                await AuthRepository(session).get_session(session_id)
                if is_valid_id(session_id, SESSION_ID_PREFIX)
                else None
            )
            if found is None or found.user_id != user_id:
                raise NotFoundError(
                    f"Session {session_id} not found", code="auth.session_not_found"
                )
            await self._revoke(session, user_id, only=session_id)
            await session.commit()

    async def revoke_user_sessions(self, user_id: str) -> int:
        """End every session of the user (deleted, deactivated, or an operator's order)."""
        async with self.database.write_sessions() as session:
            # The lock a login takes before opening a session: a login racing this either
            # finishes first (and its session is revoked here) or sees the change after.
            await AuthRepository(session).lock_credential(user_id)
            revoked = await self._revoke(session, user_id)
            await session.commit()
        return len(revoked)

    async def revoke_sessions_of(self, email: str) -> tuple[User, int]:
        user = await self.account_by_email(email)
        return user, await self.revoke_user_sessions(user.id)

    async def sign_in_user(self, session: AppSession, user_id: str, client: Client) -> SignedIn:
        """A new session for an account proven by something other than its password (an
        OAuth provider), opened in the caller's transaction, which the caller commits.

        The same rules and answers as `login` once the password is right: 401 for an account
        that is not active (read again under the lock that revoking its sessions takes, as
        `login` does), 403 when verified emails are required and this one is not."""
        await AuthRepository(session).lock_credential(user_id)
        user = await self.directory(session=session).hold_active(user_id)
        if user is None:
            raise invalid_credentials()
        if self.settings.require_verified_email and not user.email_verified:
            raise ForbiddenError(
                "Verify your email address before signing in", code="auth.email_not_verified"
            )
        tokens = await self._open_session(session, user, client)
        return SignedIn(user=user, **tokens.model_dump())

    # Internals

    async def _account(
        self, *, email: str | None = None, user_id: str | None = None
    ) -> tuple[User | None, StoredCredential | None]:
        """The account (live, active or not; found by email or id) and its credential, read
        from the primary in one short unit, before the password is checked: argon2 runs
        with no transaction open (on SQLite one would hold the database's write lock)."""
        async with self.database.primary_read_sessions() as session:
            users = self.directory(session=session)
            user = await (users.find_by_email(email) if email else users.find(user_id or ""))
            if user is None:
                return None, None
            return user, await AuthRepository(session).credential(user.id)

    async def _open_password_session(
        self, user: User, checked: StoredCredential, rehashed: str | None, client: Client
    ) -> tuple[User, Tokens]:
        """A session for a sign-in whose password matched `checked`, unless the password
        changed or the account stopped being live and active while it was being checked
        (then 401): the user as it is now, and the session's tokens. One transaction."""
        async with self.database.write_sessions() as session:
            rows = AuthRepository(session)
            # The password may have changed while it was being checked (its other sessions
            # were revoked then): this login must neither open a session nor, by saving a
            # rehash, bring the old password back.
            locked = await rows.lock_credential(user.id)
            if locked is None or locked.changed_at != checked.changed_at:
                raise invalid_credentials()
            # Read under that lock, which revoking every session of a user takes too, and
            # held until the commit: a deactivation or deletion under way is waited for and
            # refuses this sign-in; one that comes later waits for this session to exist,
            # and its revocation (which needs the credential lock) then ends it too.
            current = await self.directory(session=session).hold_active(user.id)
            if current is None:
                raise invalid_credentials()
            if rehashed is not None:
                await rows.rehash(user.id, rehashed)
            tokens = await self._open_session(session, current, client)
            await session.commit()
        return current, tokens

    async def _set_password(
        self,
        user_id: str,
        password_hash: str,
        *,
        keep: str | None,
        unless_changed_since: StoredCredential | None = None,
        check: CredentialCheck | None = None,
    ) -> None:
        """Store the new hash and revoke the sessions (all but `keep`). With
        `unless_changed_since` (the credential the caller's current password was checked
        against), refuse if the password changed meanwhile: of two changes at once, the
        second must not silently replace the first. `check` runs on the locked credential
        in the same transaction and raises to refuse (a reset token's binding and spend)."""
        async with self.database.write_sessions() as session:
            repo = AuthRepository(session)
            stored = await repo.lock_credential(user_id)
            if unless_changed_since is not None and (
                stored is None or stored.changed_at != unless_changed_since.changed_at
            ):
                raise _wrong_password()
            if check is not None:
                await check(session, stored)
            await repo.store_password(user_id, password_hash, utcnow(), locked=stored)
            await self._revoke(session, user_id, keep=keep)
            await session.commit()

    async def reset_password(self, user_id: str, password: str, check: CredentialCheck) -> None:
        """Set a new password for a proven reset: `check` (run on the locked credential, in
        the transaction) refuses by raising. Every session of the user ends."""
        self.policy.check(password, field="new_password")
        password_hash = await self.hasher.hash(password)
        await self._set_password(user_id, password_hash, keep=None, check=check)

    async def _open_session(self, session: AppSession, user: User, client: Client) -> Tokens:
        """A new session and its first refresh token, inserted in `session`'s transaction;
        from now on the request acts for `user` (its next reads see this transaction)."""
        act_for(user.id)
        row, refresh, secret = self._new_session(user.id, client)
        await AuthRepository(session).open_session(row, refresh)
        return self._tokens(user, row["id"], row["expires_at"], secret)

    def _new_session(
        self, user_id: str, client: Client
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The rows of a new session and its first refresh token, and the token's secret."""
        now = utcnow()
        session_id = new_id(SESSION_ID_PREFIX)
        secret, refresh = _refresh_token_for(session_id, now)
        row = {
            "id": session_id,
            "user_id": user_id,
            "created_at": now,
            "last_used_at": now,
            "expires_at": now + timedelta(seconds=self.settings.session_lifetime),
            "user_agent": _clip(client.user_agent, USER_AGENT_MAX_LENGTH),
            "ip": _clip(client.ip, IP_MAX_LENGTH),
        }
        return row, refresh, secret

    def _tokens(
        self, user: User, session_id: str, session_expires_at: datetime, refresh_token: str
    ) -> Tokens:
        """The pair for the session; the access token never outlives the session."""
        now = utcnow()
        access = self.tokens.issue(
            user.id,
            session_id,
            frozenset({user.role}),
            now=now,
            not_after=session_expires_at,
        )
        remaining = int((session_expires_at - now).total_seconds())
        return Tokens(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=max(0, min(self.tokens.ttl, remaining)),
        )

    async def _revoke(
        self, session: AppSession, user_id: str, *, only: str | None = None, keep: str | None = None
    ) -> Sequence[str]:
        """Revoke sessions in the caller's transaction; once it commits, this instance refuses
        their access tokens at once (the others within the revocation interval)."""
        ids = await AuthRepository(session).revoke_sessions(user_id, utcnow(), only=only, keep=keep)
        if ids:
            session.after_commit(lambda: self.revoked.add(ids))
        return ids


def _refresh_token_for(session_id: str, now: datetime) -> tuple[str, dict[str, Any]]:
    """A new refresh token of the session: the secret for the client, the row to store."""
    secret = new_opaque_token()
    row = {
        "id": new_id(REFRESH_TOKEN_ID_PREFIX),
        "session_id": session_id,
        "token_hash": opaque_token_hash(secret),
        "issued_at": now,
    }
    return secret, row


def _wrong_password() -> ForbiddenError:
    return ForbiddenError("The current password is wrong", code="auth.wrong_password")


def _live(auth_session: AuthSession, now: datetime) -> bool:
    return auth_session.revoked_at is None and auth_session.expires_at > now


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _session_info(row: AuthSession, current: str | None) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        ip=row.ip,
        current=row.id == current,
    )
