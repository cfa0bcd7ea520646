"""argon2 at test cost, for every test that is not about hashing itself.

The auth plugin refuses settings below OWASP's minimum (19 MiB, two passes), as it should;
a test suite that signs up and logs in thousands of times would spend most of its time
there. Tests marked `real_argon2` (the ones about the hashes and their parameters) keep
the configured parameters.
"""

from __future__ import annotations

from typing import Any

from argon2 import DEFAULT_RANDOM_SALT_LENGTH, Parameters, PasswordHasher, Type

# The smallest argon2id argon2-cffi accepts with a full-length salt and hash: one pass
# over 8 KiB per lane.
TEST_COST = Parameters(
    type=Type.ID,
    version=19,
    salt_len=DEFAULT_RANDOM_SALT_LENGTH,
    hash_len=32,
    time_cost=1,
    memory_cost=8,
    parallelism=1,
)


def hasher_at_test_cost(**_configured: Any) -> PasswordHasher:
    """Stands in for `argon2.PasswordHasher(...)`: the configured parameters are ignored."""
    return PasswordHasher.from_parameters(TEST_COST)
