from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from core.settings import PluginSettings
from plugins.auth.oauth.config import (
    OAuthProviderConfig,
    check_url,
    parse_allowlist,
    parse_providers,
)
from plugins.auth.smtp_url import parse_smtp_url

OWASP_ARGON2_MEMORY_KIB = 19456  # OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1
OWASP_ARGON2_TIME_COST = 2
RATE_LIMIT_SCHEMES = ("memory://", "redis://", "rediss://")
PASSWORD_MAX_LENGTH_LIMIT = 4096
PASSWORD_MIN_LENGTH_FLOOR = 8  # NIST SP 800-63B: no deployment accepts shorter passwords


class AuthSettings(PluginSettings):
    """`COURTYARD_AUTH__*`, or the `[auth]` table of `courtyard.toml`."""

    access_token_ttl: int = Field(900, ge=60, le=86400, description="Access token lifetime, s.")
    session_lifetime: int = Field(
        30 * 86400,
        ge=3600,
        description="Absolute session lifetime, s: refresh tokens stop working after it.",
    )
    refresh_reuse_grace: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A refresh token presented again within this many seconds of its use is "
        "refused without revoking its session (two tabs refreshing at once); later, reuse "
        "revokes the session as theft.",
    )
    revocation_check_interval: float = Field(
        5.0,
        gt=0,
        le=60,
        description="At most this many seconds pass before a revoked session's access tokens "
        "stop working on every instance.",
    )
    jwt_issuer: str = Field("courtyard", min_length=1, description="`iss` of every token.")
    jwt_audience: str = Field("courtyard", min_length=1, description="`aud` of every token.")
    jwt_private_key: SecretStr | None = Field(
        None,
        description="PEM Ed25519 or RSA private key: sign asymmetrically and publish the JWKS. "
        "Unset: HS256 with a key derived from COURTYARD_SECRET_KEY.",
    )
    password_min_length: int = Field(
        PASSWORD_MIN_LENGTH_FLOOR,
        ge=PASSWORD_MIN_LENGTH_FLOOR,
        le=128,
        description="Shortest password accepted.",
    )
    password_max_length: int = Field(
        1024, ge=64, le=PASSWORD_MAX_LENGTH_LIMIT, description="Longest password accepted."
    )
    argon2_memory_cost: int = Field(OWASP_ARGON2_MEMORY_KIB, ge=OWASP_ARGON2_MEMORY_KIB)
    argon2_time_cost: int = Field(OWASP_ARGON2_TIME_COST, ge=OWASP_ARGON2_TIME_COST)
    argon2_parallelism: int = Field(1, ge=1, le=16)
    rate_limit_storage: str = Field(
        "memory://",
        repr=False,
        description="Where sign-in attempt counters live: memory:// (one instance) or "
        "redis://host:port/db (shared by every instance).",
    )
    login_limit_per_account: str = Field(
        "10/minute",
        description="Sign-in attempts per account (email) per window; a success clears it.",
    )
    login_limit_per_ip: str = Field(
        "100/minute", description="Sign-in attempts per client IP per window."
    )
    mail_limit_per_account: str = Field(
        "5/hour",
        description="Password-reset and verification mails per account per window (each "
        "kind counted apart); more requests still get 202 but send nothing.",
    )
    password_reset_ttl: int = Field(3600, ge=300, le=86400, description="Reset token life, s.")
    verify_email_ttl: int = Field(
        86400, ge=3600, le=30 * 86400, description="Email verification token life, s."
    )
    require_verified_email: bool = Field(
        False, description="Refuse sign-in (403) until the account's email is verified."
    )
    frontend_url: str | None = Field(
        None,
        description="Base URL of the front end: mails link to <url>/reset-password?token=… "
        "and <url>/verify-email?token=…. Unset: mails carry the token and the API to send "
        "it to.",
    )
    mail_from: str = Field(
        "Courtyard <no-reply@localhost>", min_length=3, description="Sender of every mail."
    )
    mail_outbox: Path | None = Field(
        None,
        description="Folder the development transport writes each mail to (and logs it). "
        "Unset: ./var/mail in development, off otherwise.",
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://[user:password@]host[:port] (STARTTLS when the server offers "
        "it, required when a user is given), smtp+starttls://… (STARTTLS required) or "
        "smtps://… (TLS from the start).",
    )
    smtp_timeout: float = Field(10.0, gt=0, le=120, description="Seconds per SMTP exchange.")

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if not value.startswith(RATE_LIMIT_SCHEMES):
            raise ValueError(f"use one of {', '.join(RATE_LIMIT_SCHEMES)}")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())  # raises ValueError without the password
        return value

    @field_validator("frontend_url")
    @classmethod
    def _check_frontend(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("login_limit_per_account", "login_limit_per_ip", "mail_limit_per_account")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("expected a rate such as '10/minute' or '100/hour'") from None
        return value

    # Sign-in with OAuth 2.0 / OpenID Connect providers (docs/plugins/auth-oauth.md)

    oauth_providers: Annotated[dict[str, OAuthProviderConfig], NoDecode] = Field(
        default_factory=dict,
        description="Sign-in providers by name (the URL segment): a JSON object such as "
        '{"acme": {"kind": "oidc", "issuer": "https://id.acme.example", "client_id": "…", '
        '"client_secret": "…"}} or {"github": {"kind": "github", "client_id": "…", '
        '"client_secret": "…"}}. Empty: OAuth sign-in is off.',
    )
    oauth_redirect_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Front-end URLs a finished OAuth sign-in may redirect to (tokens in the "
        "#fragment): exact URLs, or prefixes ending in '/'. JSON list or comma-separated.",
    )
    oauth_callback_base_url: str | None = Field(
        None,
        description="Public base URL of this API as providers redirect to it (e.g. "
        "https://api.example.com); the callback is <base>/api/v1/auth/oauth/<name>/callback. "
        "Unset: taken from each request (right behind a proxy only with --proxy-headers).",
    )
    oauth_flow_ttl: int = Field(
        600, ge=60, le=3600, description="Seconds an OAuth sign-in may take, authorize to callback."
    )
    oauth_http_timeout: float = Field(
        10.0, gt=0, le=60, description="Seconds per request to an OAuth provider."
    )

    @model_validator(mode="before")
    @classmethod
    def _check_oauth_providers(cls, data: Any) -> Any:
        # Model-level, so the error carries no input value: a client secret may sit beside
        # the mistake, and the message must never echo it.
        if isinstance(data, dict) and "oauth_providers" in data:
            try:
                data = {**data, "oauth_providers": parse_providers(data["oauth_providers"])}
            except ValueError as exc:
                raise ValueError(f"COURTYARD_AUTH__OAUTH_PROVIDERS: {exc}") from None
        return data

    @field_validator("oauth_redirect_allowlist", mode="before")
    @classmethod
    def _check_allowlist(cls, value: Any) -> list[str]:
        return parse_allowlist(value)

    @field_validator("oauth_callback_base_url")
    @classmethod
    def _check_callback_base(cls, value: str | None) -> str | None:
        return check_url(value, what="the URL").rstrip("/") if value is not None else None
