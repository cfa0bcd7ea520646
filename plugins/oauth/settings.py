from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from core.extras import require_extra
from core.settings import PluginSettings
from plugins.oauth.config import OAuthProviderConfig, check_url, parse_allowlist, parse_providers

# What plugins/oauth/providers.py and oidc.py import: installed by `courtyard[oauth]`.
OAUTH_EXTRA_MODULES = ("httpx", "authlib", "joserfc")


class OAuthSettings(PluginSettings):
    """`COURTYARD_OAUTH__*`, or the `[oauth]` table of `courtyard.toml`
    (docs/plugins/oauth.md)."""

    providers: Annotated[dict[str, OAuthProviderConfig], NoDecode] = Field(
        default_factory=dict,
        description="Sign-in providers by name (the URL segment): a JSON object such as "
        '{"acme": {"kind": "oidc", "issuer": "https://id.acme.example", "client_id": "…", '
        '"client_secret": "…"}} or {"github": {"kind": "github", "client_id": "…", '
        '"client_secret": "…"}}. Empty: OAuth sign-in is off.',
    )
    redirect_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Front-end URLs a finished OAuth sign-in may redirect to (tokens in the "
        "#fragment): exact URLs, or prefixes ending in '/'. JSON list or comma-separated.",
    )
    callback_base_url: str | None = Field(
        None,
        description="Public base URL of this API as providers redirect to it (e.g. "
        "https://api.example.com); the callback is <base>/api/v1/auth/oauth/<name>/callback. "
        "Unset: taken from each request (right behind a proxy only when it is trusted: "
        "COURTYARD_FORWARDED_ALLOW_IPS).",
    )
    flow_ttl: int = Field(
        600, ge=60, le=3600, description="Seconds an OAuth sign-in may take, authorize to callback."
    )
    http_timeout: float = Field(
        10.0, gt=0, le=60, description="Seconds per request to an OAuth provider."
    )

    @model_validator(mode="before")
    @classmethod
    def _check_providers(cls, data: Any) -> Any:
        # Model-level, so the error carries no input value: a client secret may sit beside
        # the mistake, and the message must never echo it.
        if isinstance(data, dict) and "providers" in data:
            try:
                data = {**data, "providers": parse_providers(data["providers"])}
            except ValueError as exc:
                raise ValueError(f"COURTYARD_OAUTH__PROVIDERS: {exc}") from None
            if data["providers"]:  # the providers' clients are the `oauth` extra's
                require_extra("COURTYARD_OAUTH__PROVIDERS", "oauth", OAUTH_EXTRA_MODULES)
        return data

    @field_validator("redirect_allowlist", mode="before")
    @classmethod
    def _check_allowlist(cls, value: Any) -> list[str]:
        return parse_allowlist(value)

    @field_validator("callback_base_url")
    @classmethod
    def _check_callback_base(cls, value: str | None) -> str | None:
        return check_url(value, what="the URL").rstrip("/") if value is not None else None
