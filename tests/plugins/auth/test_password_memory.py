"""What passwords cost a server's memory: the common-password list, and argon2's buffers.

Each check runs in a new process, so what it measures (modules loaded, resident memory)
is that process's own and not what the test run loaded before.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.courtyard_cli import PROJECT_ROOT

RSS = """
def rss_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
"""

# Hashing at the OWASP minimum (19 MiB a hash) on the auth plugin's hashing threads: after a
# warm-up hash, the memory kept once argv[1] more hashes are done, then once argv[2] more.
HASH_MANY_TIMES = (
    RSS
    + """
import asyncio, json, sys
from plugins.auth.passwords import PasswordHasherService, usable_cpus
from plugins.auth.settings import AuthSettings

async def main():
    service = PasswordHasherService(AuthSettings.model_validate({}))
    await service.hash("warm up")
    before = rss_mib()
    kept = []
    for count in map(int, sys.argv[1:]):
        for n in range(count):  # as many at once as there are hashing threads
            await asyncio.gather(*(service.hash(f"pass {n} {t}") for t in range(usable_cpus())))
        kept.append(rss_mib() - before)
    print(json.dumps([usable_cpus(), *kept]))

asyncio.run(main())
"""
)


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


def test_hashing_keeps_at_most_a_hash_per_thread_however_many_sign_ins() -> None:
    """Each hashing thread keeps its last hash's memory for the next one (faulting it in
    again per hash cost a third of the sign-in rate): bounded by the threads, never growing
    with the number of hashes."""
    threads, after_three, after_twelve = json.loads(run_python(HASH_MANY_TIMES, "3", "9"))
    assert after_three < threads * 19 + 8  # MiB; a hash takes 19
    assert after_twelve - after_three < 4


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
