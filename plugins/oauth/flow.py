"""The state of a sign-in between authorize and callback, kept in `oauth_flow`.

Server-side rather than in a cookie: a flow must work once, and only a shared record can
say "used" to every instance behind the load balancer (a signed cookie replayed with its
callback URL would pass again). The row is found by the SHA-256 of `state` and spent with
one conditional UPDATE before the code is exchanged, so of two identical callbacks exactly
one proceeds. The PKCE verifier and the nonce never leave the server.

A sign-in flow is also bound to the browser that started it, by a random cookie whose
SHA-256 the row keeps: a callback URL planted in someone else's browser (login CSRF: they
would end up signed in as the attacker) finds no matching cookie there. A link flow is
bound to the signed-in user who started it instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.db import Database, utcnow
from plugins.oauth import errors
from plugins.oauth.models import OAuthFlow
from plugins.oauth.repository import FlowRepository


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> str:
    """43 URL-safe characters (256 bits): a state, a nonce, a PKCE verifier, a cookie."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewFlow:
    state: str
    nonce: str
    code_verifier: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SpentFlow:
    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str | None
    user_id: str | None


class FlowStore:
    def __init__(self, database: Database, ttl: int) -> None:
        self.database = database
        self.ttl = ttl

    def new(self) -> NewFlow:
        return NewFlow(
            state=new_secret(),
            nonce=new_secret(),
            code_verifier=new_secret(),
            expires_at=utcnow() + timedelta(seconds=self.ttl),
        )

    async def save(
        self,
        flow: NewFlow,
        *,
        provider: str,
        redirect_uri: str | None,
        user_id: str | None,
        browser: str | None,
    ) -> None:
        """Store the flow, forgetting the expired ones (so the table stays small)."""
        now = utcnow()
        async with self.database.write_sessions() as session:
            flows = FlowRepository(session)
            await flows.purge(now)
            await flows.add(
                OAuthFlow(
                    state_hash=digest(flow.state),
                    provider=provider,
                    nonce=flow.nonce,
                    code_verifier=flow.code_verifier,
                    redirect_uri=redirect_uri,
                    user_id=user_id,
                    browser_hash=digest(browser) if browser is not None else None,
                    created_at=now,
                    expires_at=flow.expires_at,
                )
            )
            await session.commit()

    async def spend(self, state: str, *, provider: str, browser: str | None) -> SpentFlow:
        """The flow `state` names, used up now; 400 `auth.oauth_invalid_state` when it is
        unknown, for another provider, from another browser, expired or used."""
        async with self.database.write_sessions() as session:
            flows = FlowRepository(session)
            row = await flows.by_state(digest(state))
            if row is None or row.provider != provider:
                raise errors.invalid_state()
            if row.browser_hash is not None and not hmac.compare_digest(
                row.browser_hash, digest(browser or "")
            ):
                raise errors.invalid_state()
            if not await flows.spend(row.id, utcnow()):
                raise errors.invalid_state()
            spent = SpentFlow(
                provider=row.provider,
                nonce=row.nonce,
                code_verifier=row.code_verifier,
                redirect_uri=row.redirect_uri,
                user_id=row.user_id,
            )
            await session.commit()
        return spent
