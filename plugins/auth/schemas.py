"""What the `auth` HTTP API accepts and answers (its token pairs, `Tokens` and `SignedIn`,
are in `api.py`: other plugins sign users in too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.openapi_limits import bounded_by
from plugins.auth.settings import PASSWORD_MAX_LENGTH_LIMIT, PASSWORD_MIN_LENGTH_FLOOR
from plugins.user.api import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, User

# The configured limits are checked by the service (422 naming the field); these bounds only
# stop absurd bodies before that. The document states the configured ones
# (core/openapi_limits.py).
Password = Annotated[
    str,
    Field(
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH_LIMIT,
        json_schema_extra=bounded_by(maxLength="auth.password_max_length"),
    ),
]
# A password being set: none shorter than the floor of `password_min_length` is ever taken.
NewPassword = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_LENGTH_FLOOR,
        max_length=PASSWORD_MAX_LENGTH_LIMIT,
        json_schema_extra=bounded_by(
            minLength="auth.password_min_length", maxLength="auth.password_max_length"
        ),
    ),
]
Email = Annotated[str, Field(min_length=1, max_length=EMAIL_MAX_LENGTH)]
# An address an account is created with: the service checks it is a well-formed one.
NewEmail = Annotated[Email, Field(json_schema_extra={"format": "email"})]
# Generous: a client that sends its access token by mistake gets a 401, not a 422.
RefreshTokenValue = Annotated[str, Field(min_length=1, max_length=4096)]
# A mailed token: any non-empty string up to 512 characters; a wrong one is a 400
# `auth.invalid_token` (an empty or longer one, a 422 naming `token`).
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512)]
# A display name: the user plugin's limit, as this deployment sets it, is checked on create.
DisplayName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        json_schema_extra=bounded_by(maxLength="user.max_name_length"),
    ),
]

EMAIL_EXAMPLE = "ada@example.com"
PASSWORD_EXAMPLE = "a long passphrase"  # noqa: S105 - an example in the API's documentation
MAILED_TOKEN_EXAMPLE = "PnmLTjxWHMnDiyC0Jjw4GYNs6qG5_hijkQ_1T9w58jI"  # noqa: S105 - likewise


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupRequest(_Input):
    email: NewEmail = Field(examples=[EMAIL_EXAMPLE])
    password: NewPassword = Field(examples=[PASSWORD_EXAMPLE])
    name: DisplayName = Field(examples=["Ada Lovelace"])


class LoginRequest(_Input):
    email: Email = Field(examples=[EMAIL_EXAMPLE])
    password: Password = Field(examples=[PASSWORD_EXAMPLE])


class RefreshRequest(_Input):
    refresh_token: RefreshTokenValue = Field(
        examples=["ki9eqq_c-MVXGWvVvoZN376TiiDSfdqFxbbv9yUD0d8"]
    )


class PasswordChange(_Input):
    current_password: Password = Field(examples=[PASSWORD_EXAMPLE])
    new_password: NewPassword = Field(examples=["an even longer passphrase"])


class AccountCreated(BaseModel):
    """The account exists but is not signed in: verify the email (a mail is on its way),
    then sign in. Answered by signup when verified emails are required."""

    user: User
    verification_required: Literal[True] = True


class ResetRequest(_Input):
    email: Email = Field(examples=[EMAIL_EXAMPLE])


class ResetConfirm(_Input):
    token: OpaqueToken = Field(examples=[MAILED_TOKEN_EXAMPLE])
    new_password: NewPassword = Field(examples=["an even longer passphrase"])


class VerifyConfirm(_Input):
    token: OpaqueToken = Field(examples=[MAILED_TOKEN_EXAMPLE])


class SessionInfo(BaseModel):
    """A signed-in device of the caller."""

    id: str = Field(examples=["ses_01JPA1P8FFNVNV1NAXPA4NP3BT"])
    created_at: datetime = Field(examples=["2025-03-14T10:02:41.007000Z"])
    last_used_at: datetime = Field(
        description="When its tokens were last refreshed.",
        examples=["2025-03-14T11:47:05.312000Z"],
    )
    expires_at: datetime = Field(
        description="When it ends, refreshed or not.", examples=["2025-04-13T10:02:41.007000Z"]
    )
    user_agent: str | None = Field(
        examples=[
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
        ]
    )
    ip: str | None = Field(examples=["203.0.113.24"])
    current: bool = Field(
        description="True for the session the request's token belongs to.", examples=[True]
    )
