"""What the OAuth routes accept and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from plugins.oauth.config import REDIRECT_URI_MAX_LENGTH

RedirectUri = Annotated[str, Field(min_length=1, max_length=REDIRECT_URI_MAX_LENGTH)]


class ProviderInfo(BaseModel):
    """A provider one can sign in with: `name` is the segment of its routes."""

    name: str
    kind: Literal["oidc", "github"]


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redirect_uri: RedirectUri | None = Field(
        None,
        description="Allow-listed front-end URL the callback redirects to once linked "
        "(`#linked=<provider>&identity=<id>`); unset, the callback answers JSON.",
    )


class AuthorizationStarted(BaseModel):
    """Send the browser to `authorization_url` before `expires_at`."""

    authorization_url: str
    expires_at: datetime


class IdentityInfo(BaseModel):
    """A provider account that signs in as the caller."""

    id: str
    provider: str
    email: str | None = Field(description="The provider's address for it when it was linked.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Its last sign-in, if any.")
