"""What the `auth` HTTP API accepts and answers (its token pairs, `Tokens` and `SignedIn`,
are in `api.py`: other plugins sign users in too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from plugins.auth.settings import PASSWORD_MAX_LENGTH_LIMIT, PASSWORD_MIN_LENGTH_FLOOR
from plugins.user.api import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, User

# The configured limits are checked by the service (422 naming the field); these bounds only
# stop absurd bodies before that.
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH_LIMIT)]
# A password being set: none shorter than the floor of `password_min_length` is ever taken.
NewPassword = Annotated[
    str, Field(min_length=PASSWORD_MIN_LENGTH_FLOOR, max_length=PASSWORD_MAX_LENGTH_LIMIT)
]
Email = Annotated[str, Field(min_length=1, max_length=EMAIL_MAX_LENGTH)]
# An address an account is created with: the service checks it is a well-formed one.
NewEmail = Annotated[Email, Field(json_schema_extra={"format": "email"})]
# Generous: a client that sends its access token by mistake gets a 401, not a 422.
RefreshTokenValue = Annotated[str, Field(min_length=1, max_length=4096)]
# A mailed token: any non-empty string up to 512 characters; a wrong one is a 400
# `auth.invalid_token` (an empty or longer one, a 422 naming `token`).
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupRequest(_Input):
    email: NewEmail
    password: NewPassword
    name: Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH)]


class LoginRequest(_Input):
    email: Email
    password: Password


class RefreshRequest(_Input):
    refresh_token: RefreshTokenValue


class PasswordChange(_Input):
    current_password: Password
    new_password: NewPassword


class AccountCreated(BaseModel):
    """The account exists but is not signed in: verify the email (a mail is on its way),
    then sign in. Answered by signup when verified emails are required."""

    user: User
    verification_required: Literal[True] = True


class ResetRequest(_Input):
    email: Email


class ResetConfirm(_Input):
    token: OpaqueToken
    new_password: NewPassword


class VerifyConfirm(_Input):
    token: OpaqueToken


class SessionInfo(BaseModel):
    """A signed-in device of the caller."""

    id: str
    created_at: datetime
    last_used_at: datetime = Field(description="When its tokens were last refreshed.")
    expires_at: datetime = Field(description="When it ends, refreshed or not.")
    user_agent: str | None
    ip: str | None
    current: bool = Field(description="True for the session the request's token belongs to.")
