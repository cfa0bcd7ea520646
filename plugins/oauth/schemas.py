"""What the OAuth routes accept and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from plugins.oauth.config import REDIRECT_URI_MAX_LENGTH

RedirectUri = Annotated[str, Field(min_length=1, max_length=REDIRECT_URI_MAX_LENGTH)]


class ProviderInfo(BaseModel):
    """A provider one can sign in with: `name` is the segment of its routes."""

    name: str = Field(examples=["google"])
    kind: Literal["oidc", "github"] = Field(examples=["oidc"])


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redirect_uri: RedirectUri | None = Field(
        None,
        description="Allow-listed front-end URL the callback redirects to once linked "
        "(`#linked=<provider>&identity=<id>`); unset, the callback answers JSON.",
        examples=["https://app.example.com/settings/sign-in"],
    )


class AuthorizationStarted(BaseModel):
    """Send the browser to `authorization_url` before `expires_at`."""

    authorization_url: str = Field(
        examples=[
            "https://accounts.example.com/authorize?response_type=code&client_id=courtyard"
            "&redirect_uri=https%3A%2F%2Fapi.example.com%2Fapi%2Fv1%2Fauth%2Foauth%2Fgoogle"
            "%2Fcallback&scope=openid+email+profile&state=Jx8kQ2vN0pTz5aLrW7sYc3BdF6gHuE1i"
            "&code_challenge=q3Vd9Xk2mZpL7aRr4TnW8sYc1BdF6gJuO0iE5tVxNqM&code_challenge_method=S256"
        ]
    )
    expires_at: datetime = Field(examples=["2025-03-14T10:12:41.007000Z"])


class IdentityInfo(BaseModel):
    """A provider account that signs in as the caller."""

    id: str = Field(examples=["aid_01JPA1TWVCE3ENJ06MXP0NM9A0"])
    provider: str = Field(examples=["github"])
    email: str | None = Field(
        description="The provider's address for it when it was linked.",
        examples=["ada@example.com"],
    )
    created_at: datetime = Field(examples=["2025-03-14T10:05:12.940000Z"])
    last_used_at: datetime | None = Field(
        description="Its last sign-in, if any.", examples=["2025-03-20T08:14:33.201000Z"]
    )
