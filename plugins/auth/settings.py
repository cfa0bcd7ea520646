from __future__ import annotations

from limits import parse
from pydantic import Field, SecretStr, field_validator

from core.settings import PluginSettings

OWASP_ARGON2_MEMORY_KIB = 19456  # OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1
OWASP_ARGON2_TIME_COST = 2
RATE_LIMIT_SCHEMES = ("memory://", "redis://", "rediss://")
PASSWORD_MAX_LENGTH_LIMIT = 4096


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
    password_min_length: int = Field(8, ge=8, le=128, description="Shortest password accepted.")
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

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if not value.startswith(RATE_LIMIT_SCHEMES):
            raise ValueError(f"use one of {', '.join(RATE_LIMIT_SCHEMES)}")
        return value

    @field_validator("login_limit_per_account", "login_limit_per_ip")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("expected a rate such as '10/minute' or '100/hour'") from None
        return value
