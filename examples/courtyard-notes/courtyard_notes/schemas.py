"""What the HTTP API accepts. Responses are `api.Note` (`api.ListedNote` in a listing)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from courtyard_notes.api import BODY_MAX_LENGTH, MAX_TAGS, TAG_MAX_LENGTH, TITLE_MAX_LENGTH

TAG_PATTERN = r"^[\w.-]+$"  # letters and digits of any script, `_`, `.` and `-`
_TAG = re.compile(TAG_PATTERN)
_ALLOWED_IN_BODY = frozenset("\n\r\t")


def _forbidden(value: str, allowed: frozenset[str] = frozenset()) -> bool:
    """Control or formatting characters (NUL, escapes, bidi overrides…), except `allowed`."""
    return any(unicodedata.category(c) in {"Cc", "Cf"} and c not in allowed for c in value)


def check_title(value: str) -> str:
    """A title: trimmed, not blank, on one line, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if _forbidden(value):
        raise ValueError("must not contain control or formatting characters")
    return value


def check_body(value: str) -> str:
    """Free text: new lines and tabs are fine, other control characters (NUL…) are not."""
    if _forbidden(value, _ALLOWED_IN_BODY):
        raise ValueError("must not contain control characters other than new lines and tabs")
    return value


def normalize_tag(value: str) -> str:
    """A tag as stored and compared: trimmed and lower-case."""
    value = value.strip().lower()
    if not _TAG.fullmatch(value):
        raise ValueError("use letters, digits, '_', '.' and '-' only")
    return value


def normalize_tags(values: list[str]) -> list[str]:
    """Tags without duplicates, sorted: a note's tags are a set."""
    return sorted(set(values))


Title = Annotated[str, Field(max_length=TITLE_MAX_LENGTH), AfterValidator(check_title)]
Body = Annotated[str, Field(max_length=BODY_MAX_LENGTH), AfterValidator(check_body)]
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH), AfterValidator(normalize_tag)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(normalize_tags)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteCreate(_Input):
    title: Title
    body: Body = ""
    tags: Tags = Field(default_factory=list)


class NoteUpdate(_Input):
    """A partial update: a field left out stays as it is; `tags` replaces all the tags."""

    title: Title | None = None
    body: Body | None = None
    tags: Tags | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out to keep it; null is not a value")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)
