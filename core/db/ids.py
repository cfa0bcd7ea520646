"""Prefixed ULID ids (`usr_01J…`): generated in Python, sortable, safe to use as cursors."""

from __future__ import annotations

import re

from ulid import ULID

_PREFIX_PATTERN = r"[a-z][a-z0-9]{0,15}"
# Crockford base32 without I, L, O, U; a 128-bit ULID's first character is at most 7.
_ULID_PATTERN = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^{_PREFIX_PATTERN}_{_ULID_PATTERN}$"  # for OpenAPI / Query(pattern=...)

_PREFIX = re.compile(_PREFIX_PATTERN)
_ID = re.compile(rf"({_PREFIX_PATTERN})_{_ULID_PATTERN}")


def new_id(prefix: str) -> str:
    """A new id such as `usr_01JD8X…`; `prefix` is lowercase letters and digits."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix {prefix!r}: use 1-16 lowercase letters/digits, letter first")
    return f"{prefix}_{ULID()}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """True when `value` is a well-formed id (with `prefix`, when given)."""
    match = _ID.fullmatch(value)
    return match is not None and (prefix is None or match.group(1) == prefix)
