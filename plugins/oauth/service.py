"""OAuth sign-in and linking: from a proven provider account to a session or a link.

Account rules: a provider account already linked signs in as its user. Otherwise its
email decides: no account has it → a new account (its email marked verified when the
provider vouches for it); an account has it → linked only when the provider vouches that
the address is verified (else anyone who registered that address at some provider could
take the account over), otherwise 409 `auth.link_required`: sign in and link it.
Deactivated accounts get login's answer (401).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.db import AppSession, Database, Page, PageParams, is_valid_id, utcnow
from core.errors import InvalidInputError, NotFoundError
from plugins.auth.api import Client, SignedIn, SignIns, invalid_credentials
from plugins.oauth import errors
from plugins.oauth.config import redirect_allowed
from plugins.oauth.flow import FlowStore
from plugins.oauth.models import IDENTITY_ID_PREFIX, Identity
from plugins.oauth.registry import ProviderRegistry
from plugins.oauth.repository import IdentityRepository
from plugins.oauth.schemas import AuthorizationStarted, IdentityInfo, ProviderInfo
from plugins.oauth.settings import OAuthSettings
from plugins.user.api import EMAIL_MAX_LENGTH, UserDirectory

if TYPE_CHECKING:
    from plugins.oauth.providers import ProviderAccount

logger = logging.getLogger("courtyard.oauth")

# Build the other plugins' services on the caller's session (`session=`): the container's
# `user_directory` and `auth_sign_ins` inputs.
DirectoryFactory = Callable[..., UserDirectory]
SignInsFactory = Callable[..., SignIns]

PROVIDER_ERROR = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME_FALLBACK_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Finished:
    """A callback's outcome: signed in (`signed_in`) or linked (`linked`), and where the
    browser goes next (`redirect_uri`, or None for a JSON answer)."""

    redirect_uri: str | None
    signed_in: SignedIn | None = None
    linked: IdentityInfo | None = None


class OAuthService:
    def __init__(
        self,
        *,
        settings: OAuthSettings,
        database: Database,
        directory: DirectoryFactory,
        sign_ins: SignInsFactory,
        providers: ProviderRegistry,
    ) -> None:
        self.settings = settings
        self.database = database
        self.directory = directory
        self.sign_ins = sign_ins
        self.providers = providers
        self.flows = FlowStore(database, settings.flow_ttl)

    def provider_list(self) -> list[ProviderInfo]:
        return [
            ProviderInfo(name=name, kind=self.settings.providers[name].kind)
            for name in self.providers.names()
        ]

    # The flow

    async def start(
        self,
        provider_name: str,
        *,
        redirect_uri: str | None,
        callback_url: str,
        user_id: str | None = None,
        browser: str | None = None,
    ) -> AuthorizationStarted:
        """A new flow and the provider URL to send the browser to. `user_id` makes it a
        link flow for that user; `browser` binds a sign-in flow to the browser's cookie."""
        provider = self.providers.get(provider_name)
        if redirect_uri is not None and not redirect_allowed(
            redirect_uri, self.settings.redirect_allowlist
        ):
            raise errors.redirect_not_allowed()
        flow = self.flows.new()
        url = await provider.authorization_url(
            callback_url=callback_url,
            state=flow.state,
            nonce=flow.nonce,
            code_verifier=flow.code_verifier,
        )
        await self.flows.save(
            flow,
            provider=provider_name,
            redirect_uri=redirect_uri,
            user_id=user_id,
            browser=browser,
        )
        return AuthorizationStarted(authorization_url=url, expires_at=flow.expires_at)

    async def finish(
        self,
        provider_name: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        issuer: str | None,
        callback_url: str,
        browser: str | None,
        client: Client,
    ) -> Finished:
        """Spend the flow, then prove the account and sign in (or link). The flow is spent
        first, whatever follows, so no callback works twice."""
        provider = self.providers.get(provider_name)
        if not state:
            raise errors.invalid_state()
        flow = await self.flows.spend(state, provider=provider_name, browser=browser)
        if error is not None:
            raise errors.provider_refused(error if PROVIDER_ERROR.fullmatch(error) else "error")
        expected_issuer = await provider.issuer() if issuer is not None else None
        if expected_issuer is not None and issuer != expected_issuer:
            # RFC 9207: the answer comes from another provider than this flow's (mix-up).
            raise errors.invalid_callback("its `iss` is not this provider's issuer")
        if not code:
            raise errors.invalid_callback("it carries no authorization code")
        account = await provider.sign_in(
            code=code,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
            callback_url=callback_url,
        )
        if flow.user_id is not None:
            linked = await self._link(flow.user_id, provider_name, account)
            return Finished(redirect_uri=flow.redirect_uri, linked=linked)
        signed_in = await self._sign_in(provider_name, account, client)
        return Finished(redirect_uri=flow.redirect_uri, signed_in=signed_in)

    # The caller's identities

    async def identities(self, user_id: str, page: PageParams) -> Page[IdentityInfo]:
        async with self.database.primary_read_sessions() as session:
            rows = await IdentityRepository(session).of_user(
                user_id, limit=page.limit, cursor=page.cursor
            )
        items = [_info(row) for row in rows[: page.limit]]
        next_cursor = items[-1].id if len(rows) > page.limit else None
        return Page[IdentityInfo](items=items, next_cursor=next_cursor)

    async def unlink(self, user_id: str, identity_id: str) -> None:
        """Remove one of the user's identities: 404 if it is not theirs, 409 if it is the
        account's last way to sign in (no password and no other identity)."""
        async with self.database.write_sessions() as session:
            repo = IdentityRepository(session)
            mine = (
                await repo.lock_all_of_user(user_id)
                if is_valid_id(identity_id, IDENTITY_ID_PREFIX)
                else []
            )
            if not any(row.id == identity_id for row in mine):
                raise errors.identity_not_found(identity_id)
            has_password = await self.sign_ins(session=session).has_password(user_id)
            if not has_password and len(mine) == 1:
                raise errors.last_sign_in_method()
            await repo.remove(identity_id)
            await session.commit()

    # Internals

    async def _sign_in(self, provider: str, account: ProviderAccount, client: Client) -> SignedIn:
        now = utcnow()
        async with self.database.write_sessions() as session:
            repo = IdentityRepository(session)
            found = await repo.by_subject(provider, account.subject)
            if found is not None:
                user_id = found.user_id
                await repo.touch(found.id, now)
            else:
                user_id = await self._first_sign_in(session, provider, account, now)
            # Raises (and so rolls back an account just created) like a login would.
            signed_in = await self.sign_ins(session=session).open_session(user_id, client)
            await session.commit()
        return signed_in

    async def _first_sign_in(
        self, session: AppSession, provider: str, account: ProviderAccount, now: datetime
    ) -> str:
        """The user a provider account seen for the first time signs in as (linked now)."""
        if not account.email:
            raise errors.email_required()
        users = self.directory(session=session)
        try:
            existing = await users.get_by_email(account.email)
        except NotFoundError:
            existing = None
        if existing is not None:
            if not account.email_verified:
                raise errors.link_required(provider)
            if not existing.is_active:
                raise invalid_credentials()
            if not existing.email_verified:
                # The sign-in's first lock before the account's: the order every sign-in
                # takes them in, so a password sign-in at the same moment cannot deadlock.
                await self.sign_ins(session=session).hold(existing.id)
                await users.mark_email_verified(existing.id)
            user_id = existing.id
        else:
            user_id = await self._create_user(session, account)
        identity = Identity(
            user_id=user_id,
            provider=provider,
            subject=account.subject,
            email=_shown_email(account.email),
            created_at=now,
            last_used_at=now,
        )
        if not await IdentityRepository(session).add(identity):
            raise errors.identity_taken(provider)  # a concurrent first sign-in won
        logger.info("%s account linked to user %s at first sign-in", provider, user_id)
        return user_id

    async def _create_user(self, session: AppSession, account: ProviderAccount) -> str:
        email = account.email or ""
        users = self.directory(session=session)
        fallback = email.split("@", 1)[0][:NAME_FALLBACK_LENGTH] or "user"
        for name in dict.fromkeys([(account.name or "").strip() or fallback, fallback]):
            try:
                user = await users.create(email, name)
            except InvalidInputError as exc:
                fields = {e.get("field") for e in exc.extra.get("errors", [])}
                if "email" in fields:
                    raise errors.bad_account_data("its email address is not valid") from None
                continue  # the provider's display name breaks our rules: use the fallback
            if account.email_verified:
                await users.mark_email_verified(user.id)
            return user.id
        raise errors.bad_account_data("no usable name for the account")

    async def _link(self, user_id: str, provider: str, account: ProviderAccount) -> IdentityInfo:
        async with self.database.write_sessions() as session:
            if await self.directory(session=session).active_account(user_id) is None:
                raise invalid_credentials()
            repo = IdentityRepository(session)
            found = await repo.by_subject(provider, account.subject)
            if found is not None:
                if found.user_id != user_id:
                    raise errors.identity_taken(provider)
                return _info(found)  # linked already: nothing to do
            identity = Identity(
                user_id=user_id,
                provider=provider,
                subject=account.subject,
                email=_shown_email(account.email),
            )
            if not await repo.add(identity):
                raise errors.identity_taken(provider)
            await session.commit()
        return _info(identity)


def _shown_email(email: str | None) -> str | None:
    """The provider's address as kept beside the link (only to show it): none if absurd."""
    return email if email is not None and len(email) <= EMAIL_MAX_LENGTH else None


def _info(row: Identity) -> IdentityInfo:
    return IdentityInfo(
        id=row.id,
        provider=row.provider,
        email=row.email,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )
