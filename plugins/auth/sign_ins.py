"""`api.SignIns`: signing a user in within another plugin's unit of work."""

from __future__ import annotations

from core.db import AppSession
from plugins.auth.api import Client, SignedIn
from plugins.auth.repository import AuthRepository
from plugins.auth.service import AuthService


class SessionSignIns:
    """`AuthService`'s sign-in rules on the caller's `session`; never commits. Built by the
    container's `sign_ins` provider, which other plugins use as `auth_sign_ins`."""

    def __init__(self, session: AppSession, service: AuthService) -> None:
        self.session = session
        self.service = service

    async def open_session(self, user_id: str, client: Client) -> SignedIn:
        return await self.service.sign_in_user(self.session, user_id, client)

    async def hold(self, user_id: str) -> None:
        await AuthRepository(self.session).lock_credential(user_id)

    async def has_password(self, user_id: str) -> bool:
        return await AuthRepository(self.session).credential(user_id) is not None
