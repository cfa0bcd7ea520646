"""What the HTTP API accepts, and answers besides `api.User` (the DTO every plugin shares)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from core.openapi_limits import bounded_by
from plugins.user.api import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, Role


def check_email(value: str) -> str:
    """`value` without surrounding spaces if it is a well-formed address; ValueError if not.

    The address is stored as given (not lower-cased); comparisons ignore case.
    """
    value = value.strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return value


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(c) in {"Cc", "Cf"} for c in value)


def check_name(value: str) -> str:
    """A display name: trimmed, not empty, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if has_control_characters(value):
        raise ValueError("must not contain control or formatting characters")
    return value


EmailAddress = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH), AfterValidator(check_email)]
# NAME_MAX_LENGTH bounds every deployment; the document states this one's (the service
# checks it).
DisplayName = Annotated[
    str,
    Field(
        max_length=NAME_MAX_LENGTH,
        json_schema_extra=bounded_by(maxLength="user.max_name_length"),
    ),
    AfterValidator(check_name),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_nullable(schema: dict[str, Any]) -> None:
    """Fields of a patch are optional but not nullable: the document says so (typed
    `X | None = None` only so that a field left out can be told from one that was sent)."""
    for name, field in schema.get("properties", {}).items():
        branches = field.get("anyOf", [])
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and len(branches) == 2:
            rest = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
            schema["properties"][name] = {**kept[0], **rest}


class _Patch(_Input):
    """A partial update: a field left out stays as it is; `null` is refused, not ignored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_nullable)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out to keep it; null is not a value")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class UserCreate(_Input):
    """An admin creates an account (it signs in once an authentication plugin lets it)."""

    email: EmailAddress = Field(examples=["grace@example.com"])
    name: DisplayName = Field(examples=["Grace Hopper"])
    role: Role = "user"


class ProfileUpdate(_Patch):
    """What a user may change about themselves. Role, status, email and id are not here."""

    name: DisplayName | None = Field(None, examples=["Ada King"])


class AdminUpdate(_Patch):
    """What an admin may change about any user."""

    name: DisplayName | None = Field(None, examples=["Grace Hopper"])
    role: Role | None = Field(None, examples=["admin"])
    is_active: bool | None = Field(None, examples=[True])


class MemberCounts(BaseModel):
    """How many live (not deleted) users there are, and how many of them joined since 00:00
    UTC on the 1st of this month, on Monday of this week, and today."""

    model_config = ConfigDict(frozen=True)

    total: int = Field(ge=0, description="Every live user.", examples=[1280])
    month: int = Field(ge=0, description="Created since the 1st, 00:00 UTC.", examples=[96])
    week: int = Field(ge=0, description="Created since Monday, 00:00 UTC.", examples=[21])
    today: int = Field(ge=0, description="Created since 00:00 UTC today.", examples=[4])


@dataclass(frozen=True, slots=True)
class UserFilter:
    """What an admin's user list is narrowed to; None means no constraint."""

    q: str | None = None
    role: str | None = None
    is_active: bool | None = None
    include_deleted: bool = False
