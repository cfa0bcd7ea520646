"""Password policy edges and argon2id hashing (the `auth` plugin's building blocks)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from argon2 import extract_parameters

from core.errors import InvalidInputError
from plugins.auth.passwords import PasswordHasherService, PasswordPolicy
from plugins.auth.settings import AuthSettings

# About the hashes themselves: the configured parameters, never the suite's test cost.
pytestmark = pytest.mark.real_argon2


def settings(**values: Any) -> AuthSettings:
    return AuthSettings.model_validate(values)


@pytest.mark.parametrize(
    ("password", "kind"),
    [
        pytest.param("x7#Kq9!", "string_too_short", id="7-characters"),
        pytest.param("x7#Kq9!" + "é" * 1018, "string_too_long", id="1025-characters"),
        pytest.param("password", "password_too_common", id="common"),
        pytest.param("PassWord", "password_too_common", id="common-any-case"),
        pytest.param(
            "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # fullwidth "password"
            "password_too_common",
            id="common-fullwidth",
        ),
    ],
)
def test_the_policy_refuses(password: str, kind: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        PasswordPolicy(settings()).check(password)
    [error] = refused.value.extra["errors"]
    assert (error["field"], error["type"]) == ("password", kind)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("x7#Kq9!z", id="8-characters"),
        pytest.param("x7#Kq9!" + "é" * 1017, id="1024-characters"),
        pytest.param("🦊🦊🦊🦊🦊🦊🦊🦊", id="emoji"),
        pytest.param("correct horse battery staple", id="passphrase"),
        pytest.param("alllowercaseletters", id="no-composition-rules"),
    ],
)
def test_the_policy_accepts(password: str) -> None:
    PasswordPolicy(settings()).check(password)


def test_the_limits_are_settings() -> None:
    policy = PasswordPolicy(settings(password_min_length=12, password_max_length=64))
    with pytest.raises(InvalidInputError):
        policy.check("elevenchars")
    with pytest.raises(InvalidInputError):
        policy.check("y" * 65)
    policy.check("twelve chars")


@pytest.mark.parametrize(
    "values",
    [{"argon2_memory_cost": 19455}, {"argon2_time_cost": 1}, {"password_min_length": 7}],
)
def test_settings_below_the_owasp_minimum_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        settings(**values)


async def test_hashes_are_argon2id_at_owasp_parameters_made_off_the_loop() -> None:
    hasher = PasswordHasherService(settings())
    threads: list[str] = []
    real = hasher._hasher

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def hash(self, password: str) -> str:
            threads.append(threading.current_thread().name)
            return real.hash(password)

    hasher._hasher = Spy()  # type: ignore[assignment]
    password_hash = await hasher.hash("correct horse battery staple")

    parameters = extract_parameters(password_hash)
    assert password_hash.startswith("$argon2id$")
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name
    assert await hasher.verify(password_hash, "correct horse battery staple")
    assert not await hasher.verify(password_hash, "correct horse battery stapler")
    assert not await hasher.verify("not a hash", "correct horse battery staple")


async def test_unicode_forms_of_one_password_match() -> None:
    hasher = PasswordHasherService(settings())
    composed, decomposed = "Caf\u00e9 au lait 1", "Cafe\u0301 au lait 1"
    assert await hasher.verify(await hasher.hash(composed), decomposed)


async def test_hashes_with_weaker_parameters_need_rehashing() -> None:
    stronger = PasswordHasherService(settings(argon2_memory_cost=32768, argon2_time_cost=3))
    current = PasswordHasherService(settings())
    old_hash = await current.hash("correct horse battery staple")

    assert stronger.needs_rehash(old_hash)
    assert not current.needs_rehash(old_hash)
    assert await stronger.verify(old_hash, "correct horse battery staple")  # still accepted
    assert stronger.needs_rehash("garbage")


async def test_the_rehash_check_reads_every_parameter_once_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasherService(settings())
    await hasher.prepare()  # as at startup: the hash it compares against exists
    current = await hasher.hash("correct horse battery staple")
    parsed: list[str] = []
    argon2 = hasher._hasher

    class CountingHasher:
        def check_needs_rehash(self, password_hash: str) -> bool:
            parsed.append(password_hash)
            return argon2.check_needs_rehash(password_hash)

    monkeypatch.setattr(hasher, "_hasher", CountingHasher())
    assert not hasher.needs_rehash(current)
    assert parsed == []  # answered without argon2's parsing
    _kind, version, parameters, salt, digest = current.removeprefix("$").split("$")
    others = [
        current.replace("$argon2id$", "$argon2i$"),
        current.replace(f"${version}$", "$v=16$"),
        current.replace(f"${parameters}$", "$m=19456,t=3,p=1$"),
        current.replace(f"${parameters}$", "$m=65536,t=2,p=1$"),
        current.replace(f"${salt}$", f"${salt}AAAA$"),  # a longer salt
        current.removesuffix(digest) + digest[:-2],  # a shorter hash
        "garbage",
    ]
    for other in others:
        assert hasher.needs_rehash(other), other
    assert parsed == others  # each left to argon2's own check


async def test_the_dummy_verification_does_the_work_and_never_matches() -> None:
    hasher = PasswordHasherService(settings())
    calls: list[str] = []
    original = hasher._verify

    def spy(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return original(password_hash, password)

    hasher._verify = spy  # type: ignore[method-assign]
    results = await asyncio.gather(*[hasher.verify_dummy(p) for p in ("", "x", "password")])

    assert results == [False, False, False]
    assert len(calls) == 3
    assert all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in calls)
