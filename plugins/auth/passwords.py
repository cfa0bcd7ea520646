"""Password policy and argon2id hashing. Hashing runs in a worker thread, never on the loop."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib.util import find_spec, module_from_spec, spec_from_file_location
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import InvalidInputError
from plugins.auth.settings import AuthSettings

T = TypeVar("T")


class CommonPasswords:
    """A word list kept as one comma-separated string, looked up by scanning it.

    A set of the 30,000 passwords would hold 6 MiB for the life of every process; the
    string holds 0.25 MiB. A look-up scans it (some 70 µs when the word is absent), and is
    made only where a password is chosen, beside a hash that takes tens of milliseconds.
    """

    def __init__(self, words: list[str]) -> None:
        self._joined = "," + ",".join(words) + ","
        self._count = len(words)

    def __contains__(self, word: object) -> bool:
        # No word of the list has a comma; one in `word` would match across two words.
        return isinstance(word, str) and "," not in word and f",{word}," in self._joined

    def __len__(self) -> int:
        return self._count


@cache
def common_passwords() -> CommonPasswords:
    """The 30,000 most common passwords of the zxcvbn project's list (read on first use).

    The list's module is run from its file, not imported: importing it runs the zxcvbn
    package first, which builds its whole strength estimator (every word list ranked, the
    keyboard graphs: 12 MiB kept for the life of the process) when only this list is
    wanted. Run so, none of it is kept but the list itself (see `CommonPasswords`).
    """
    package = find_spec("zxcvbn")
    folders = list(package.submodule_search_locations or []) if package is not None else []
    path = Path(folders[0]) / "frequency_lists.py" if folders else None
    spec = spec_from_file_location("zxcvbn.frequency_lists", path) if path else None
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("zxcvbn, a dependency of courtyard, is not installed")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return CommonPasswords(module.FREQUENCY_LISTS["passwords"])


def normalized(password: str) -> str:
    """NFKC, as NIST SP 800-63B asks: the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


class PasswordPolicy:
    """Length limits and a common-password list; no composition rules (NIST SP 800-63B)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.min_length = settings.password_min_length
        self.max_length = settings.password_max_length

    def check_length(self, password: str, *, field: str = "password") -> None:
        """Refuse an over-long password (422) before anything hashes it."""
        if len(password) > self.max_length:
            raise InvalidInputError(
                field, f"String should have at most {self.max_length} characters",
                kind="string_too_long",
            )  # fmt: skip

    def check(self, password: str, *, field: str = "password") -> None:
        """Raise InvalidInputError (422 naming `field`) for a password the policy refuses."""
        self.check_length(password, field=field)
        if len(password) < self.min_length:
            raise InvalidInputError(
                field, f"String should have at least {self.min_length} characters",
                kind="string_too_short",
            )  # fmt: skip
        if normalized(password).lower() in common_passwords():
            raise InvalidInputError(
                field, "This password is one of the most common ones; choose another",
                kind="password_too_common",
            )  # fmt: skip


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a pinned worker), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PasswordHasherService:
    """argon2id at no less than OWASP's minimum; every call runs in a worker thread.

    Hashing has threads of its own, one per usable CPU: it is CPU-bound, so more threads
    would not hash faster, only hold more memory (each hash takes `argon2_memory_cost`)
    and evict each other's caches. Logins beyond that wait their turn.

    Each hashing thread keeps its last hash's memory (glibc's malloc reuses it for the
    next hash), so what hashing holds is at most one hash's worth per thread, however many
    sign-ins come. Giving it back after every hash (a 1 MiB mmap threshold) made the next
    hash fault its 19 MiB in again: a third of the sign-in rate, measured with
    `make bench`. The hash made at startup is given back (glibc maps the first one).
    """

    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None
        self._current: tuple[str, int, int] | None = None  # the dummy's `_parameters_of`
        self._threads = ThreadPoolExecutor(usable_cpus(), thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await self._in_thread(self._hasher.hash, normalized(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._in_thread(self._verify, password_hash, normalized(password))

    async def _in_thread(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the configured ones."""
        if self._current is not None and _parameters_of(password_hash) == self._current:
            # Its parameters read the same as those of the hash made at startup: no need
            # for argon2's own check, which parses them (on every sign-in).
            return False
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def prepare(self) -> None:
        """Make the dummy hash (at startup), so no login pays for it: a first unknown-email
        login that hashed *and* verified would take longer than a wrong password."""
        if self._dummy is None:
            self._dummy = await self._in_thread(self._hasher.hash, "courtyard dummy password")
            self._current = _parameters_of(self._dummy)

    async def verify_dummy(self, password: str) -> bool:
        """Spend the time of a real verification, for an account that does not exist, so the
        answer's timing does not tell which emails have accounts. Always False."""
        if self._dummy is None:  # the plugin's startup made it; this is for other callers
            await self.prepare()
        await self.verify(self._dummy or "", password + "\x00not the dummy")
        return False

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _parameters_of(password_hash: str) -> tuple[str, int, int]:
    """A PHC string's (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) type, version and parameters
    as written, and the lengths of its salt and hash."""
    head, _, digest = password_hash.rpartition("$")
    parameters, _, salt = head.rpartition("$")
    return parameters, len(salt), len(digest)
