"""The `auth` plugin's public surface: the only module other plugins may import.

A plugin that proves who a user is by other means (an OAuth provider, a magic link) lists
`"auth"` in its `requires` and signs that user in through this plugin, so every session
follows the same rules (an inactive account is refused, verified emails required when
configured, revocation, token rotation). It declares what it uses as an input of its own
container, named `auth_<provider>`, and the core connects it:

    class MagicLinkContainer(containers.DeclarativeContainer):
        auth_sign_ins = providers.Dependency()  # builds a `SignIns` on a session

`SignIns` is bound to the caller's unit of work (a session from `Database`), so the
caller's own rows and the new session land together:

    async with database.write_sessions() as session:
        ...  # the caller's work: find or create the account, record how it was proven
        signed_in = await container.auth_sign_ins(session=session).open_session(user_id, client)
        await session.commit()

It never commits; it raises the core's errors (`invalid_credentials()` for an account that
is unknown, deleted or inactive; a 403 `auth.email_not_verified` when verified emails are
required), which roll the caller's transaction back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from core.errors import UnauthorizedError
from plugins.user.api import User


@dataclass(frozen=True, slots=True)
class Client:
    """Where a sign-in comes from, as shown in the session list."""

    ip: str | None = None
    user_agent: str | None = None


class Tokens(BaseModel):
    """A fresh token pair. Send `access_token` as `Authorization: Bearer …`; keep
    `refresh_token` secret and trade it at `/refresh` for the next pair (it works once)."""

    access_token: str = Field(
        description="A signed JWT.",
        examples=[
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjb3VydHlhcmQiLCJhdWQiOiJjb3VydHlh"
            "cmQiLCJzdWIiOiJ1c3JfMDFKUDlaTVFDTlIxVE1DREpOVlNWUUhSRVQiLCJpYXQiOjE3NDE5NDQ0MTMs"
            "ImV4cCI6MTc0MTk0NTMxMywianRpIjoiWWQzUXc5czJtVmIwWGs3THBUNGVSQSIsInNpZCI6InNlc18w"
            "MUpQQTFQOEZGTlZOVjFOQVhQQTROUDNCVCIsInJvbGVzIjpbInVzZXIiXSwidHlwIjoiYWNjZXNzIn0."
            "3BMchhni4x3HLNWLb7mZHWe_5I_89sU0ata7Ik7k1M4"
        ],
    )
    refresh_token: str = Field(
        description="Opaque; works once.", examples=["3MPVKOZpGRs33yRpzKISo_aOk5b9wLjV_Y1w-fvnvhs"]
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])


class SignedIn(Tokens):
    """A new session: its tokens and the account (the body of `/api/v1/auth/login`)."""

    user: User


def invalid_credentials() -> UnauthorizedError:
    """The 401 `auth.invalid_credentials`: one answer for every reason a sign-in fails, so
    it tells nothing about the account."""
    return UnauthorizedError("Invalid email or password", code="auth.invalid_credentials")


class SignIns(Protocol):
    """What other plugins may do with sign-ins, in the caller's unit of work."""

    async def open_session(self, user_id: str, client: Client) -> SignedIn:
        """A new session for an account proven by something other than its password.

        The same rules and answers as a password sign-in once the password is right:
        `invalid_credentials()` for an account that is not live and active (read under a
        lock held until the caller's transaction ends, so a deactivation under way is
        waited for), 403 `auth.email_not_verified` when verified emails are required and
        the account's is not."""
        ...

    async def hold(self, user_id: str) -> None:
        """Take the lock every sign-in of the account takes first (and ending its sessions
        takes too), held until the caller's transaction ends. Call it before changing the
        account in a transaction that then calls `open_session`: every sign-in then locks
        in one order (the credential, then the account), so two cannot deadlock."""
        ...

    async def has_password(self, user_id: str) -> bool:
        """Whether the user can sign in with a password (has one set)."""
        ...
