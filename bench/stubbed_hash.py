"""Courtyard with argon2 verification answering at once, for the bench tools'
`--hash-stubbed` only: a sign-in's whole path (the thread hop included) without the
hash's CPU and memory. Every password is accepted: never serve this outside the bench."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from plugins.auth.passwords import PasswordHasherService


def add_option(parser: argparse.ArgumentParser) -> None:
    """`--hash-stubbed`, as every bench tool that offers it spells it."""
    parser.add_argument(
        "--hash-stubbed",
        action="store_true",
        help="courtyard with argon2 answering at once: a sign-in without the hash",
    )


def check_option(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse `--hash-stubbed` for an app other than Courtyard, in one line."""
    if args.hash_stubbed and args.app != "courtyard":
        parser.error("--hash-stubbed is for courtyard only")


def _accept(self: PasswordHasherService, password_hash: str, password: str) -> bool:
    return True


def create_app() -> FastAPI:
    """Patched here, in the process as it builds the app, not at import."""
    from core.app import create_app as create_courtyard
    from plugins.auth.passwords import PasswordHasherService

    PasswordHasherService._verify = _accept  # type: ignore[method-assign]
    return create_courtyard()
