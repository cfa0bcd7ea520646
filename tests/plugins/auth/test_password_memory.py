"""What passwords cost a server's memory: the common-password list, and argon2's buffers.

Each check runs in a new process, so what it measures (modules loaded, resident memory)
is that process's own and not what the test run loaded before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.courtyard_cli import PROJECT_ROOT

RSS = """
def rss_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
"""

# Three sign-ins' worth of hashing at the OWASP minimum (19 MiB each), on the hashing threads
# of the auth plugin, or (with "plain" in argv) on an executor of argon2 alone.
HASH_THREE_TIMES = (
    RSS
    + """
import asyncio, json, sys
from concurrent.futures import ThreadPoolExecutor
from argon2 import PasswordHasher, Type
from plugins.auth.passwords import PasswordHasherService
from plugins.auth.settings import AuthSettings

async def main():
    if sys.argv[1] == "plain":
        hasher, threads = PasswordHasher(memory_cost=19456, type=Type.ID), ThreadPoolExecutor(1)
        loop = asyncio.get_running_loop()
        hash = lambda password: loop.run_in_executor(threads, hasher.hash, password)
    else:
        service = PasswordHasherService(AuthSettings.model_validate({}))
        hash = service.hash
    await hash("warm up: the first hash maps and unmaps its memory either way")
    before = rss_mib()
    for n in range(3):
        await hash(f"a long passphrase {n}")
    print(json.dumps(rss_mib() - before))

asyncio.run(main())
"""
)


def glibc_version() -> str | None:
    """`glibc 2.36` on a GNU C library, None on any other (musl, macOS)."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # a name this platform does not know
        return None
    return version if version and version.startswith("glibc") else None


def run_python(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.splitlines()[-1]


def test_the_hashing_threads_give_their_memory_back() -> None:
    kept = json.loads(run_python(HASH_THREE_TIMES, "service"))
    assert kept < 8  # MiB; a hash takes 19


@pytest.mark.skipif(
    glibc_version() is None,
    reason="shows glibc's malloc keeping a thread's freed arena; other C libraries differ",
)
def test_without_it_argon2_alone_keeps_a_hash_worth_per_thread() -> None:
    """What the test above guards against, shown on argon2 alone: it is real (with glibc,
    whose allocator keeps a freed arena per thread)."""
    kept = json.loads(run_python(HASH_THREE_TIMES, "plain"))
    assert kept >= 18


def test_the_common_password_list_loads_without_the_strength_estimator() -> None:
    script = """
import json, sys
from plugins.auth.passwords import common_passwords
words = common_passwords()
candidates = ["password", "dragon", "qwerty", "123456", "geekboy", "alonso",
              "123456,password", "ssword,dra", "correct horse battery staple", ""]
print(json.dumps([len(words), [w for w in candidates if w in words],
                  sorted(name for name in sys.modules if name.startswith("zxcvbn"))]))
"""
    size, found, zxcvbn_modules = json.loads(run_python(script))
    # The first and last words of the list are found; a word of another list, two words
    # joined by the separator, a piece across two words or nothing at all are not.
    assert (size, zxcvbn_modules) == (30_000, [])
    assert found == ["password", "dragon", "qwerty", "123456", "geekboy"]
