"""The bench's own PostgreSQL database: created, migrated by Courtyard, seeded; and the
per-run data (access tokens, refresh tokens, an empty upload table)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from argon2 import PasswordHasher, Type
from pydantic import SecretStr

from bench.config import ADMIN_EMAIL, PASSWORD, SECRET_KEY, USERS
from core.db.ids import new_id
from plugins.auth.settings import AuthSettings
from plugins.auth.tokens import AccessTokens, signing_key

SESSION_LIFETIME = timedelta(days=30)


def sqlalchemy_url(server: str, name: str) -> str:
    return f"postgresql+asyncpg://{server}/{name}"


def asyncpg_url(server: str, name: str) -> str:
    return f"postgresql://{server}/{name}"


async def recreate(server: str, name: str) -> None:
    """Drop and create database `name` (nothing else on the server is touched)."""
    conn = await asyncpg.connect(asyncpg_url(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def migrate(courtyard: Path, env: dict[str, str]) -> None:
    """`courtyard db upgrade`: every app runs on the tables Courtyard's migrations make."""
    subprocess.run([str(courtyard), "db", "upgrade"], env=env, check=True, capture_output=True)


def argon2_hasher(settings: AuthSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


async def seed(url: str, settings: AuthSettings) -> dict[str, str]:
    """An admin and `USERS` users with the bench password; a live session for the admin and
    for `user0`. Returns {"admin": user id, "user": user id, "<who>_session": session id}."""
    now = datetime.now(UTC)
    password_hash = argon2_hasher(settings).hash(PASSWORD)
    people = [(new_id("usr"), ADMIN_EMAIL, "Admin", "admin")] + [
        (new_id("usr"), f"user{i}@bench.example", f"User {i}", "user") for i in range(USERS)
    ]
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "user",
            columns=[
                *("id", "email", "email_key", "name", "role", "is_active", "email_verified"),
                *("created_at", "updated_at"),
            ],
            records=[(i, e, e.lower(), n, r, True, True, now, now) for i, e, n, r in people],
        )
        await conn.copy_records_to_table(
            "auth_credential",
            columns=["user_id", "password_hash", "changed_at"],
            records=[(p[0], password_hash, now) for p in people],
        )
        ids = {"admin": people[0][0], "user": people[1][0]}
        for who in ("admin", "user"):
            ids[f"{who}_session"] = await _new_sessions(conn, ids[who], 1, now)
    finally:
        await conn.close()
    return ids


async def _new_sessions(conn: asyncpg.Connection, user_id: str, count: int, now: datetime) -> str:
    sessions = [new_id("ses") for _ in range(count)]
    await conn.copy_records_to_table(
        "auth_session",
        columns=["id", "user_id", "created_at", "last_used_at", "expires_at"],
        records=[(s, user_id, now, now, now + SESSION_LIFETIME) for s in sessions],
    )
    return sessions[0]


def access_token(ids: dict[str, str], who: str, settings: AuthSettings) -> str:
    """A fresh access token of `who` ("admin" or "user"), signed as Courtyard signs them."""
    tokens = AccessTokens(settings, signing_key(settings, SecretStr(SECRET_KEY)))
    role = "admin" if who == "admin" else "user"
    return tokens.issue(ids[who], ids[f"{who}_session"], frozenset({role}))


async def refresh_tokens(url: str, user_id: str, count: int, target: Path) -> None:
    """`count` unused refresh tokens of `user_id`, one session each (a refresh touches its
    session row, so shared sessions would measure row-lock queues), written one per line."""
    now = datetime.now(UTC)
    secrets_ = [secrets.token_urlsafe(32) for _ in range(count)]
    sessions = [new_id("ses") for _ in range(count)]
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "auth_session",
            columns=["id", "user_id", "created_at", "last_used_at", "expires_at"],
            records=[(s, user_id, now, now, now + SESSION_LIFETIME) for s in sessions],
        )
        await conn.copy_records_to_table(
            "auth_refresh_token",
            columns=["id", "session_id", "token_hash", "issued_at"],
            records=[
                (new_id("rtk"), s, hashlib.sha256(t.encode()).hexdigest(), now)
                for s, t in zip(sessions, secrets_, strict=True)
            ],
        )
    finally:
        await conn.close()
    await asyncio.to_thread(target.write_text, "\n".join(secrets_) + "\n", encoding="utf-8")


async def clear_uploads(url: str) -> None:
    """Every app starts the upload scenario from the same (empty) table."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE upload_file")
    finally:
        await conn.close()
