"""Prefixed ULID ids (`usr_01J…`): generated in Python, sortable, safe to use as cursors."""

from __future__ import annotations

import re

from ulid import StrictMonotonicPolicy, ULIDGenerator

_PREFIX_PATTERN = r"[a-z][a-z0-9]{0,15}"
# Crockford base32 without I, L, O, U; a 128-bit ULID's first character is at most 7.
_ULID_PATTERN = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^{_PREFIX_PATTERN}_{_ULID_PATTERN}$"  # for OpenAPI / Query(pattern=...)

_PREFIX = re.compile(_PREFIX_PATTERN)
_ID = re.compile(rf"({_PREFIX_PATTERN})_{_ULID_PATTERN}")

# Our own generator: reassigning `ulid.default_generator` elsewhere cannot change its policy.
_ulids = ULIDGenerator(policy=StrictMonotonicPolicy())
_checked_prefixes: set[str] = set()


def new_id(prefix: str) -> str:
    """A new id such as `usr_01JD8X…`; `prefix` is lowercase letters and digits.

    The ULID is python-ulid's, in its strict monotonic mode: ids sort by the millisecond
    they were made in, and ids made one after another within a millisecond (as on the event
    loop's thread) sort in the order they were made, the random part being the previous
    one's plus 1. Not ordered: ids of one millisecond made at once on several threads
    (python-ulid 4.1 reads the clock before taking its lock, so a thread can arrive with a
    millisecond already passed and draw fresh random bits), ids of one millisecond from
    different processes, and ids made after the wall clock was stepped back, which sort
    before older ones. Ids that are not ordered still differ, by 80 random bits."""
    if prefix not in _checked_prefixes:
        if not _PREFIX.fullmatch(prefix):
            message = f"id prefix {prefix!r}: use 1-16 lowercase letters/digits, letter first"
            raise ValueError(message)
        _checked_prefixes.add(prefix)
    return f"{prefix}_{_ulids.generate()}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """True when `value` is a well-formed id (with `prefix`, when given)."""
    match = _ID.fullmatch(value)
    return match is not None and (prefix is None or match.group(1) == prefix)
