"""The floor: the same six endpoints on plain Starlette and raw asyncpg (no ORM, no
validation library, no DI), doing the same work as Courtyard and the reference: the same
JWT checks, revocation set, account check, SQL round trips, argon2 parameters, login
throttle and presign HMAC. What is left is the cost of the work itself.

Configured by the environment (`BENCH_*`), set by `bench/run.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

SECRET = os.environ["BENCH_SECRET_KEY"].encode()
JWT_KEY = hmac.new(SECRET, b"courtyard.auth.access-token.v1", hashlib.sha256).digest()
URL_KEY = hmac.new(SECRET, b"courtyard.upload.signed-url.v1", hashlib.sha256).digest()
ISSUER = AUDIENCE = "courtyard"
ACCESS_TTL = 900
SESSION_LIFETIME = timedelta(days=30)
REVOCATION_INTERVAL = 5.0
REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles", "typ"]
USER_COLUMNS = (
    "id, email, name, role, is_active, email_verified, created_at, updated_at, deleted_at"
)
hasher = PasswordHasher(
    time_cost=int(os.environ["BENCH_ARGON2_TIME_COST"]),
    memory_cost=int(os.environ["BENCH_ARGON2_MEMORY_COST"]),
    parallelism=int(os.environ["BENCH_ARGON2_PARALLELISM"]),
    type=Type.ID,
)
limiter = MovingWindowRateLimiter(MemoryStorage())
LOGIN_LIMIT = parse(os.environ["BENCH_LOGIN_LIMIT"])
pool: asyncpg.Pool


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, default=_iso), status, media_type="application/json")


def _iso(value: datetime) -> str:
    return value.isoformat()


class Revoked:
    ids: frozenset[str] = frozenset()
    loaded_at = float("-inf")

    @classmethod
    async def contains(cls, session_id: str) -> bool:
        if time.monotonic() - cls.loaded_at >= REVOCATION_INTERVAL:
            started = time.monotonic()
            since = utcnow() - timedelta(seconds=ACCESS_TTL + REVOCATION_INTERVAL + 60)
            rows = await pool.fetch("SELECT id FROM auth_session WHERE revoked_at >= $1", since)
            cls.ids = frozenset(r[0] for r in rows)
            cls.loaded_at = started
        return session_id in cls.ids


def decode(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            JWT_KEY,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED},
        )
    except jwt.PyJWTError:
        raise Refused(401, "Authentication required") from None
    roles = claims["roles"]
    if claims["typ"] != "access" or not (
        isinstance(roles, list) and all(isinstance(r, str) for r in roles)
    ):
        raise Refused(401, "Authentication required")
    if not all(isinstance(claims[c], str) for c in ("sub", "sid", "jti")):
        raise Refused(401, "Authentication required")
    return claims


async def caller(request: Request) -> dict[str, Any]:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "Authentication required")
    claims = decode(token.strip())
    if await Revoked.contains(claims["sid"]):
        raise Refused(401, "Authentication required")
    row = await pool.fetchrow(f'SELECT {USER_COLUMNS} FROM "user" WHERE id = $1', claims["sub"])
    if row is None or row["deleted_at"] is not None or not row["is_active"]:
        raise Refused(401, "Authentication required")
    return dict(row)


def issue(user: dict[str, Any], session_id: str, session_expires: datetime, refresh: str) -> dict:
    now = utcnow()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user["id"],
        "iat": now,
        "exp": min(now + timedelta(seconds=ACCESS_TTL), session_expires),
        "jti": secrets.token_urlsafe(16),
        "sid": session_id,
        "roles": [user["role"]],
        "typ": "access",
    }
    remaining = int((session_expires - now).total_seconds())
    return {
        "access_token": jwt.encode(claims, JWT_KEY, algorithm="HS256"),
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": max(0, min(ACCESS_TTL, remaining)),
    }


def new_refresh() -> tuple[str, str, str]:
    secret = secrets.token_urlsafe(32)
    return secret, new_id("rtk"), hashlib.sha256(secret.encode()).hexdigest()


async def body_of(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    data = json.loads(await request.body())
    if not isinstance(data, dict) or set(data) != set(fields):
        raise Refused(422, "invalid body")
    return data


def handler(function: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await function(request)  # type: ignore[no-any-return]
        except Refused as exc:
            return answer({"detail": exc.detail}, exc.status)

    return endpoint


@handler
async def live(request: Request) -> Response:
    return answer({"status": "ok"})


@handler
async def me(request: Request) -> Response:
    return answer(await caller(request))


@handler
async def list_users(request: Request) -> Response:
    user = await caller(request)
    if user["role"] != "admin":
        raise Refused(403, "admin only")
    limit = int(request.query_params.get("limit", "20"))
    if not 1 <= limit <= 100:
        raise Refused(422, "limit")
    rows = await pool.fetch(
        f'SELECT {USER_COLUMNS} FROM "user" WHERE deleted_at IS NULL ORDER BY id DESC LIMIT $1',
        limit + 1,
    )
    items = [dict(r) for r in rows[:limit]]
    return answer({"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None})


@handler
async def refresh(request: Request) -> Response:
    data = await body_of(request, ("refresh_token",))
    now = utcnow()
    token_hash = hashlib.sha256(str(data["refresh_token"]).encode()).hexdigest()
    async with pool.acquire() as conn, conn.transaction():
        token = await conn.fetchrow(
            "SELECT id, session_id, used_at FROM auth_refresh_token WHERE token_hash = $1",
            token_hash,
        )
        if token is None or token["used_at"] is not None:
            raise Refused(401, "invalid refresh token")
        session = await conn.fetchrow(
            "SELECT id, user_id, expires_at, revoked_at FROM auth_session WHERE id = $1",
            token["session_id"],
        )
        if session is None or session["revoked_at"] or session["expires_at"] <= now:
            raise Refused(401, "invalid refresh token")
        user = await conn.fetchrow(
            f'SELECT {USER_COLUMNS} FROM "user" WHERE id = $1', session["user_id"]
        )
        if user is None or user["deleted_at"] is not None or not user["is_active"]:
            raise Refused(401, "invalid refresh token")
        secret, successor, successor_hash = new_refresh()
        spent = await conn.execute(
            "UPDATE auth_refresh_token SET used_at = $1, replaced_by = $2 "
            "WHERE id = $3 AND used_at IS NULL",
            now,
            successor,
            token["id"],
        )
        if spent != "UPDATE 1":
            raise Refused(401, "invalid refresh token")
        await conn.execute(
            "INSERT INTO auth_refresh_token (id, session_id, token_hash, issued_at) "
            "VALUES ($1, $2, $3, $4)",
            successor,
            session["id"],
            successor_hash,
            now,
        )
        await conn.execute(
            "UPDATE auth_session SET last_used_at = $1 WHERE id = $2", now, session["id"]
        )
    return answer(issue(dict(user), session["id"], session["expires_at"], secret))


def verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@handler
async def login(request: Request) -> Response:
    data = await body_of(request, ("email", "password"))
    email, password = str(data["email"]), str(data["password"])
    account_key = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    ip = request.client.host if request.client else "?"
    for key in (f"account:{account_key}", f"ip:{ip}"):
        if not await limiter.hit(LOGIN_LIMIT, "login", key):
            raise Refused(429, "Too many sign-in attempts")
    async with pool.acquire() as conn:
        user = await conn.fetchrow(
            f'SELECT {USER_COLUMNS} FROM "user" WHERE email_key = $1 AND deleted_at IS NULL',
            email.lower(),
        )
        credential = None
        if user is not None:
            credential = await conn.fetchrow(
                "SELECT password_hash, changed_at FROM auth_credential WHERE user_id = $1",
                user["id"],
            )
    if user is None or credential is None:
        raise Refused(401, "Invalid email or password")
    password = unicodedata.normalize("NFKC", password)
    if not await asyncio.to_thread(verify, credential["password_hash"], password):
        raise Refused(401, "Invalid email or password")
    async with pool.acquire() as conn, conn.transaction():
        locked = await conn.fetchrow(
            "SELECT changed_at FROM auth_credential WHERE user_id = $1 FOR UPDATE", user["id"]
        )
        if locked is None or locked["changed_at"] != credential["changed_at"]:
            raise Refused(401, "Invalid email or password")
        user = await conn.fetchrow(f'SELECT {USER_COLUMNS} FROM "user" WHERE id = $1', user["id"])
        if user is None or user["deleted_at"] is not None or not user["is_active"]:
            raise Refused(401, "Invalid email or password")
        now = utcnow()
        session_id, expires = new_id("ses"), now + SESSION_LIFETIME
        await conn.execute(
            "INSERT INTO auth_session (id, user_id, created_at, last_used_at, expires_at, "
            "user_agent, ip) VALUES ($1, $2, $3, $3, $4, $5, $6)",
            session_id,
            user["id"],
            now,
            expires,
            request.headers.get("user-agent"),
            ip,
        )
        secret, token_id, token_hash = new_refresh()
        await conn.execute(
            "INSERT INTO auth_refresh_token (id, session_id, token_hash, issued_at) "
            "VALUES ($1, $2, $3, $4)",
            token_id,
            session_id,
            token_hash,
            now,
        )
    await limiter.clear(LOGIN_LIMIT, "login", f"account:{account_key}")
    account = dict(user)
    return answer({**issue(account, session_id, expires, secret), "user": account})


@handler
async def create_upload(request: Request) -> Response:
    user = await caller(request)
    data = await body_of(request, ("filename", "content_type", "size"))
    size, content_type = data["size"], str(data["content_type"]).strip().lower()
    if not isinstance(size, int) or size < 0 or size > 25 * 1024 * 1024:
        raise Refused(422, "size")
    now = utcnow()
    upload_id = new_id("upl")
    key = f"uploads/{user['id']}/{upload_id}"
    url_expires = now + timedelta(minutes=15)
    expires = int(url_expires.timestamp())
    message = "\n".join(["PUT", upload_id, key, str(size), content_type, str(expires)])
    signature = hmac.new(URL_KEY, message.encode(), hashlib.sha256).hexdigest()
    base = str(request.url_for("upload_content", upload_id=upload_id))
    url = f"{base}?{urlencode({'expires': expires, 'signature': signature})}"
    row = {
        "id": upload_id,
        "owner_id": user["id"],
        "filename": str(data["filename"]),
        "content_type": content_type,
        "size": size,
        "status": "pending",
        "sha256": None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
        "expires_at": now + timedelta(days=1),
        "download_url": None,
        "download_expires_at": None,
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"upload.quota:{user['id']}"
        )
        files, used = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(size), 0) FROM upload_file WHERE owner_id = $1 "
            "AND deleted_at IS NULL AND (status = 'ready' OR (status = 'pending' "
            "AND expires_at > $2))",
            user["id"],
            now,
        )
        if files + 1 > 10**9 or used + size > 10**15:
            raise Refused(409, "quota exceeded")
        await conn.execute(
            "INSERT INTO upload_file (id, owner_id, key, filename, content_type, size, status, "
            "expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', "
            "$7, $8, $8)",
            upload_id,
            user["id"],
            key,
            row["filename"],
            content_type,
            size,
            row["expires_at"],
            now,
        )
    grant = {
        "upload": row,
        "url": url,
        "method": "PUT",
        "fields": {},
        "headers": {"Content-Type": content_type},
        "expires_at": url_expires,
    }
    return answer(grant, 201)


async def upload_content(request: Request) -> Response:
    return answer({"detail": "not benchmarked"}, 404)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_ASYNCPG_URL"], min_size=10, max_size=15)
    yield
    await pool.close()


app = Starlette(
    routes=[
        Route("/health/live", live),
        Route("/api/v1/users/me", me),
        Route("/api/v1/users", list_users),
        Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
        Route("/api/v1/auth/login", login, methods=["POST"]),
        Route("/api/v1/uploads", create_upload, methods=["POST"]),
        Route(
            "/api/v1/uploads/{upload_id}/content",
            upload_content,
            methods=["PUT"],
            name="upload_content",
        ),
    ],
    lifespan=lifespan,
)
