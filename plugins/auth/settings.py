from pydantic import Field, SecretStr

from core.settings import PluginSettings

OWASP_ARGON2_MEMORY_KIB = 19456  # OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1
OWASP_ARGON2_TIME_COST = 2


class AuthSettings(PluginSettings):
    """`COURTYARD_AUTH__*`, or the `[auth]` table of `courtyard.toml`."""

    access_token_ttl: int = Field(900, ge=60, le=86400, description="Access token lifetime, s.")
    jwt_issuer: str = Field("courtyard", min_length=1, description="`iss` of every token.")
    jwt_audience: str = Field("courtyard", min_length=1, description="`aud` of every token.")
    jwt_private_key: SecretStr | None = Field(
        None,
        description="PEM Ed25519 or RSA private key: sign asymmetrically and publish the JWKS. "
        "Unset: HS256 with a key derived from COURTYARD_SECRET_KEY.",
    )
    password_min_length: int = Field(8, ge=8, le=128, description="Shortest password accepted.")
    password_max_length: int = Field(1024, ge=64, le=4096, description="Longest password accepted.")
    argon2_memory_cost: int = Field(OWASP_ARGON2_MEMORY_KIB, ge=OWASP_ARGON2_MEMORY_KIB)
    argon2_time_cost: int = Field(OWASP_ARGON2_TIME_COST, ge=OWASP_ARGON2_TIME_COST)
    argon2_parallelism: int = Field(1, ge=1, le=16)
