"""Mailed proofs: password reset and email verification.

Each flow mails a single-use token (stored only as a SHA-256) that is bound to what it was
issued against: a reset token to the password hash of the moment and to the address it
was mailed to (as Django binds its reset tokens), a verification token to the email
address. A password changed by any route, or an email changed, makes the outstanding
tokens useless. The request side runs
after the response has been sent, so a request for a known email answers exactly like
one for an unknown email.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from urllib.parse import quote

from core.db import AppSession, Database, utcnow
from core.errors import BadRequestError, NotFoundError
from plugins.auth.models import ActionToken
from plugins.auth.repository import AuthRepository, StoredCredential
from plugins.auth.service import AuthService, DirectoryFactory
from plugins.auth.settings import AuthSettings
from plugins.auth.throttle import ActionLimiter
from plugins.auth.tokens import new_opaque_token, opaque_token_hash
from plugins.mail.api import Mailer, MailMessage
from plugins.user.api import User

logger = logging.getLogger("courtyard.auth")

RESET = "password_reset"
VERIFY = "verify_email"


def invalid_token() -> BadRequestError:
    return BadRequestError(
        "The token is invalid, expired or already used", code="auth.invalid_token"
    )


def _binding(purpose: str, value: str) -> str:
    return hashlib.sha256(f"{purpose}\n{value}".encode()).hexdigest()


def password_binding(credential: StoredCredential | None, email: str) -> str:
    """A reset token's binding: the password hash and the address the link was mailed to
    (once the account's address changes, a link in the old mailbox must not take it)."""
    password_hash = credential.password_hash if credential else ""
    return _binding(RESET, f"{password_hash}\n{email.lower()}")


def email_binding(email: str) -> str:
    return _binding(VERIFY, email.lower())


class AccountRecovery:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        database: Database,
        directory: DirectoryFactory,
        auth: AuthService,
        mailer: Mailer,
        limiter: ActionLimiter,
    ) -> None:
        self.settings = settings
        self.database = database
        self.directory = directory
        self.auth = auth
        self.mailer = mailer
        self.limiter = limiter

    # Password reset

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link to the account with `email`, if there is an active one and it
        has not asked too often. Runs after the response: it answers nothing."""
        if not await self.limiter.allow(RESET, email):
            logger.info("password reset for an account asked too often; no mail sent")
            return
        async with self.database.primary_read_sessions() as session:
            try:
                user = await self.directory(session=session).get_by_email(email)
            except NotFoundError:
                return
            credential = await AuthRepository(session).credential(user.id)
        if not user.is_active:
            return
        token, expires_at = await self._issue(user, RESET, password_binding(credential, user.email))
        await self.mailer.send(self._reset_mail(user, token, expires_at))

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set the new password with a valid reset token; every session ends."""
        found = await self._usable(token, RESET)
        async with self.database.primary_read_sessions() as session:
            user = await self.directory(session=session).active_account(found.user_id)
        if user is None:
            raise invalid_token()

        async def bound_and_spent(session: AppSession, credential: StoredCredential | None) -> None:
            if password_binding(credential, user.email) != found.bound_to:
                raise invalid_token()  # the password or email changed since it was issued
            if not await AuthRepository(session).spend_action_token(found.id, utcnow()):
                raise invalid_token()  # used meanwhile (a concurrent confirm won)

        await self.auth.reset_password(found.user_id, new_password, bound_and_spent)

    # Email verification

    async def request_verification(self, user_id: str) -> None:
        """Mail a verification link to the user's address, unless it is verified already."""
        async with self.database.primary_read_sessions() as session:
            user = await self.directory(session=session).active_account(user_id)
        if user is None or user.email_verified:
            return
        if not await self.limiter.allow(VERIFY, user.email):
            logger.info("verification mail asked too often; no mail sent")
            return
        token, expires_at = await self._issue(user, VERIFY, email_binding(user.email))
        await self.mailer.send(self._verification_mail(user, token, expires_at))

    async def confirm_verification(self, token: str) -> None:
        """Mark the address verified with a valid verification token for its current email."""
        found = await self._usable(token, VERIFY)
        async with self.database.write_sessions() as session:
            users = self.directory(session=session)
            user = await users.active_account(found.user_id)
            if user is None or email_binding(user.email) != found.bound_to:
                raise invalid_token()  # gone, deactivated, or the email changed
            if not await AuthRepository(session).spend_action_token(found.id, utcnow()):
                raise invalid_token()
            await users.mark_email_verified(user.id)
            await session.commit()

    # Internals

    async def _issue(self, user: User, purpose: str, bound_to: str) -> tuple[str, datetime]:
        token = new_opaque_token()
        now = utcnow()
        ttl = (
            self.settings.password_reset_ttl if purpose == RESET else self.settings.verify_email_ttl
        )
        expires_at = now + timedelta(seconds=ttl)
        async with self.database.write_sessions() as session:
            await AuthRepository(session).add(
                ActionToken(
                    user_id=user.id,
                    purpose=purpose,
                    token_hash=opaque_token_hash(token),
                    bound_to=bound_to,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            await session.commit()
        return token, expires_at

    async def _usable(self, token: str, purpose: str) -> ActionToken:
        """The unused, unexpired token of `purpose`; 400 `auth.invalid_token` otherwise."""
        async with self.database.primary_read_sessions() as session:
            found = await AuthRepository(session).action_token(opaque_token_hash(token), purpose)
        if found is None or found.used_at is not None or found.expires_at <= utcnow():
            raise invalid_token()
        return found

    def _link(self, page: str, token: str) -> str | None:
        base = self.settings.frontend_url
        return f"{base}/{page}?token={quote(token)}" if base else None

    def _reset_mail(self, user: User, token: str, expires_at: datetime) -> MailMessage:
        minutes = self.settings.password_reset_ttl // 60
        link = self._link("reset-password", token)
        how = (
            f"Choose a new password here:\n\n{link}\n"
            if link
            else "Send this token with your new password to "
            f"POST /api/v1/auth/password-reset/confirm:\n\n{token}\n"
        )
        text = (
            f"Hello {user.name},\n\nsomeone asked to reset the password of your account.\n"
            f"{how}\nIt works once, for {minutes} minutes, and stops working if your password "
            "changes meanwhile. If you did not ask for this, ignore this mail: your password "
            "stays as it is.\n"
        )
        return MailMessage(
            to=user.email, subject="Reset your password", text=text, tag="auth.password_reset"
        )

    def _verification_mail(self, user: User, token: str, expires_at: datetime) -> MailMessage:
        hours = self.settings.verify_email_ttl // 3600
        link = self._link("verify-email", token)
        how = (
            f"Confirm it here:\n\n{link}\n"
            if link
            else f"Send this token to POST /api/v1/auth/verify/confirm:\n\n{token}\n"
        )
        text = (
            f"Hello {user.name},\n\nplease confirm that {user.email} is your address.\n"
            f"{how}\nIt works once, for {hours} hours, for this address only.\n"
        )
        return MailMessage(
            to=user.email, subject="Confirm your email address", text=text, tag="auth.verify_email"
        )
