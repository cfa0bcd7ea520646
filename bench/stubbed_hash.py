"""Courtyard with argon2 verification answering at once, for `bench.threads --hash-stubbed`
only: a sign-in's whole path (the thread hop included) without the hash's CPU and memory.
Every password is accepted: never serve this outside the bench."""

from __future__ import annotations

from fastapi import FastAPI

from core.app import create_app as create_courtyard
from plugins.auth.passwords import PasswordHasherService


def _accept(self: PasswordHasherService, password_hash: str, password: str) -> bool:
    return True


def create_app() -> FastAPI:
    """Patched here, in the server's process as it builds the app, not at import."""
    PasswordHasherService._verify = _accept  # type: ignore[method-assign]
    return create_courtyard()
