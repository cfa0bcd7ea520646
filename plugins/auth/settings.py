from __future__ import annotations

from typing import Self

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator

from core.extras import require_extra
from core.settings import PluginSettings

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
    rate_limit_storage: str | None = Field(
        None,
        repr=False,
        description="Where sign-in attempt counters live: memory:// (one instance) or "
        "redis://host:port/db (shared by every instance). Unset or empty: COURTYARD_REDIS_URL "
        "when that is set, else memory://.",
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

    @model_validator(mode="after")
    def _check_key_support(self) -> Self:
        if self.jwt_private_key is not None:  # Ed25519 and RSA come from the `keys` extra
            require_extra("COURTYARD_AUTH__JWT_PRIVATE_KEY", "keys", ["cryptography"])
        return self

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_storage(cls, value: str | None) -> str | None:
        if not value:  # "" is unset, as for COURTYARD_REDIS_URL
            return None
        if not value.startswith(RATE_LIMIT_SCHEMES):
            raise ValueError(f"use one of {', '.join(RATE_LIMIT_SCHEMES)}")
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
