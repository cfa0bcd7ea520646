"""The hand-written reference: what one competent engineer would write for the same six
endpoints, in one file, with FastAPI + SQLAlchemy async (asyncpg) + PyJWT + argon2-cffi.

No plugins, no DI container, no hooks, no middleware. It does the same work as Courtyard
per request, so the difference is what Courtyard's core adds: the same JWT checks (pinned
HS256, required claims, issuer, audience, typed claims), the same revocation check (an
in-memory set of revoked sessions reloaded every few seconds), the same account check
(live, active, current role), the same SQL round trips, the same argon2 parameters, the
same login throttle (`limits`, in memory) and the same presign HMAC.

Configured by the environment (`BENCH_*`), set by `bench/run.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, DateTime, String, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from ulid import ULID

SECRET = os.environ["BENCH_SECRET_KEY"].encode()
JWT_KEY = hmac.new(SECRET, b"courtyard.auth.access-token.v1", hashlib.sha256).digest()
URL_KEY = hmac.new(SECRET, b"courtyard.upload.signed-url.v1", hashlib.sha256).digest()
ISSUER = AUDIENCE = "courtyard"
ACCESS_TTL = 900
SESSION_LIFETIME = timedelta(days=30)
REVOCATION_INTERVAL = 5.0
REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles", "typ"]
hasher = PasswordHasher(
    time_cost=int(os.environ["BENCH_ARGON2_TIME_COST"]),
    memory_cost=int(os.environ["BENCH_ARGON2_MEMORY_COST"]),
    parallelism=int(os.environ["BENCH_ARGON2_PARALLELISM"]),
    type=Type.ID,
)
limiter = MovingWindowRateLimiter(MemoryStorage())
LOGIN_LIMIT = parse(os.environ["BENCH_LOGIN_LIMIT"])

engine = create_async_engine(
    os.environ["BENCH_DATABASE_URL"], pool_size=10, max_overflow=5, pool_pre_ping=True
)
sessions = async_sessionmaker(engine, expire_on_commit=False)
read_sessions = async_sessionmaker(
    engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
)
app = FastAPI()


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


# Tables (made by Courtyard's migrations)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class UserRow(Base):
    __tablename__ = "user"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool]
    email_verified: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class CredentialRow(Base):
    __tablename__ = "auth_credential"
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime]


class SessionRow(Base):
    __tablename__ = "auth_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))


class RefreshRow(Base):
    __tablename__ = "auth_refresh_token"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    replaced_by: Mapped[str | None] = mapped_column(String(64))


class UploadRow(Base):
    __tablename__ = "upload_file"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


# Responses


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    email: str
    name: str
    role: Literal["user", "admin"]
    is_active: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class UserPage(BaseModel):
    items: list[User]
    next_cursor: str | None


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class SignedIn(Tokens):
    user: User


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=4096)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(max_length=127, pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9].*$")
    size: int = Field(ge=0)


class Upload(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    owner_id: str
    filename: str
    content_type: str
    size: int
    status: Literal["pending", "ready"]
    sha256: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    download_url: str | None = None
    download_expires_at: datetime | None = None


class UploadGrant(BaseModel):
    upload: Upload
    url: str
    method: Literal["PUT", "POST"]
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime


# Sessions and the caller


async def read_session() -> AsyncIterator[AsyncSession]:
    async with read_sessions() as session:
        yield session


async def write_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


class Revoked:
    """Sessions revoked within the access-token lifetime, reloaded every few seconds."""

    ids: frozenset[str] = frozenset()
    loaded_at = float("-inf")

    @classmethod
    async def contains(cls, session_id: str) -> bool:
        if time.monotonic() - cls.loaded_at >= REVOCATION_INTERVAL:
            started = time.monotonic()
            since = utcnow() - timedelta(seconds=ACCESS_TTL + REVOCATION_INTERVAL + 60)
            async with read_sessions() as session:
                rows = await session.scalars(
                    select(SessionRow.id).where(SessionRow.revoked_at >= since)
                )
                cls.ids = frozenset(rows)
            cls.loaded_at = started
        return session_id in cls.ids


def unauthorized() -> HTTPException:
    return HTTPException(401, "Authentication required")


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
        raise unauthorized() from None
    roles = claims["roles"]
    if claims["typ"] != "access" or not (
        isinstance(roles, list) and all(isinstance(r, str) for r in roles)
    ):
        raise unauthorized()
    if not all(isinstance(claims[c], str) for c in ("sub", "sid", "jti")):
        raise unauthorized()
    return claims


async def current_user(request: Request) -> UserRow:
    """The caller: a valid token of an unrevoked session of a live, active account."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    claims = decode(token.strip())
    if await Revoked.contains(claims["sid"]):
        raise unauthorized()
    async with read_sessions() as session:
        user = await session.get(UserRow, claims["sub"])
    if user is None or user.deleted_at is not None or not user.is_active:
        raise unauthorized()
    return user


Caller = Annotated[UserRow, Depends(current_user)]
Reader = Annotated[AsyncSession, Depends(read_session)]
Writer = Annotated[AsyncSession, Depends(write_session)]


def issue(user: UserRow, session: SessionRow, refresh: str) -> Tokens:
    now = utcnow()
    expires = min(now + timedelta(seconds=ACCESS_TTL), session.expires_at)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.id,
        "iat": now,
        "exp": expires,
        "jti": secrets.token_urlsafe(16),
        "sid": session.id,
        "roles": [user.role],
        "typ": "access",
    }
    remaining = int((session.expires_at - now).total_seconds())
    return Tokens(
        access_token=jwt.encode(claims, JWT_KEY, algorithm="HS256"),
        refresh_token=refresh,
        expires_in=max(0, min(ACCESS_TTL, remaining)),
    )


def refresh_row(session_id: str, now: datetime) -> tuple[str, RefreshRow]:
    secret = secrets.token_urlsafe(32)
    token_hash = hashlib.sha256(secret.encode()).hexdigest()
    return secret, RefreshRow(
        id=new_id("rtk"), session_id=session_id, token_hash=token_hash, issued_at=now
    )


# Routes


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/users/me", response_model=User)
async def me(user: Caller) -> UserRow:
    return user


@app.get("/api/v1/users", response_model=UserPage)
async def list_users(
    user: Caller,
    db: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> UserPage:
    if user.role != "admin":
        raise HTTPException(403, "This action requires the 'admin' role")
    stmt = select(UserRow).where(UserRow.deleted_at.is_(None))
    if cursor is not None:
        stmt = stmt.where(UserRow.id < cursor)
    rows = list(await db.scalars(stmt.order_by(UserRow.id.desc()).limit(limit + 1)))
    items = rows[:limit]
    return UserPage(
        items=[User.model_validate(r) for r in items],
        next_cursor=items[-1].id if len(rows) > limit else None,
    )


@app.post("/api/v1/auth/refresh", response_model=Tokens)
async def refresh(data: RefreshRequest, db: Writer) -> Tokens:
    now = utcnow()
    token_hash = hashlib.sha256(data.refresh_token.encode()).hexdigest()
    token = await db.scalar(select(RefreshRow).where(RefreshRow.token_hash == token_hash))
    if token is None or token.used_at is not None:
        raise HTTPException(401, "invalid refresh token")
    auth_session = await db.get(SessionRow, token.session_id)
    if auth_session is None or auth_session.revoked_at or auth_session.expires_at <= now:
        raise HTTPException(401, "invalid refresh token")
    user = await db.get(UserRow, auth_session.user_id)
    if user is None or user.deleted_at is not None or not user.is_active:
        raise HTTPException(401, "invalid refresh token")
    secret, successor = refresh_row(auth_session.id, now)
    spent = await db.execute(
        update(RefreshRow)
        .where(RefreshRow.id == token.id, RefreshRow.used_at.is_(None))
        .values(used_at=now, replaced_by=successor.id)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise HTTPException(401, "invalid refresh token")
    db.add(successor)
    await db.flush()
    await db.execute(
        update(SessionRow).where(SessionRow.id == auth_session.id).values(last_used_at=now)
    )
    await db.commit()
    return issue(user, auth_session, secret)


def verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@app.post("/api/v1/auth/login", response_model=SignedIn)
async def login(data: LoginRequest, request: Request) -> SignedIn:
    account_key = hashlib.sha256(data.email.strip().lower().encode()).hexdigest()
    ip = request.client.host if request.client else "?"
    for key in (f"account:{account_key}", f"ip:{ip}"):
        if not await limiter.hit(LOGIN_LIMIT, "login", key):
            raise HTTPException(429, "Too many sign-in attempts")
    async with read_sessions() as db:
        user = await db.scalar(
            select(UserRow).where(
                UserRow.email_key == data.email.lower(), UserRow.deleted_at.is_(None)
            )
        )
        credential = await db.get(CredentialRow, user.id) if user else None
    password = unicodedata.normalize("NFKC", data.password)
    if user is None or credential is None:
        raise HTTPException(401, "Invalid email or password")
    if not await asyncio.to_thread(verify, credential.password_hash, password):
        raise HTTPException(401, "Invalid email or password")
    async with sessions() as db:
        locked = await db.get(CredentialRow, user.id, with_for_update=True, populate_existing=True)
        if locked is None or locked.changed_at != credential.changed_at:
            raise HTTPException(401, "Invalid email or password")
        user = await db.get(UserRow, user.id)
        if user is None or user.deleted_at is not None or not user.is_active:
            raise HTTPException(401, "Invalid email or password")
        now = utcnow()
        auth_session = SessionRow(
            id=new_id("ses"),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + SESSION_LIFETIME,
            user_agent=request.headers.get("user-agent"),
            ip=ip,
        )
        secret, token = refresh_row(auth_session.id, now)
        db.add(auth_session)
        await db.flush()
        db.add(token)
        await db.flush()
        await db.commit()
    await limiter.clear(LOGIN_LIMIT, "login", f"account:{account_key}")
    tokens = issue(user, auth_session, secret)
    return SignedIn(user=User.model_validate(user), **tokens.model_dump())


@app.post("/api/v1/uploads", status_code=201, response_model=UploadGrant)
async def create_upload(
    data: UploadCreate, user: Caller, db: Writer, request: Request
) -> UploadGrant:
    if data.size > 25 * 1024 * 1024:
        raise HTTPException(413, "too large")
    now = utcnow()
    upload_id = new_id("upl")
    row = UploadRow(
        id=upload_id,
        owner_id=user.id,
        key=f"uploads/{user.id}/{upload_id}",
        filename=data.filename,
        content_type=data.content_type,
        size=data.size,
        status="pending",
        expires_at=now + timedelta(days=1),
        created_at=now,
        updated_at=now,
    )
    url_expires = now + timedelta(minutes=15)
    expires = int(url_expires.timestamp())
    message = "\n".join(["PUT", row.id, row.key, str(row.size), row.content_type, str(expires)])
    signature = hmac.new(URL_KEY, message.encode(), hashlib.sha256).hexdigest()
    base = str(request.url_for("upload_content", upload_id=upload_id))
    url = f"{base}?{urlencode({'expires': expires, 'signature': signature})}"
    await db.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"upload.quota:{user.id}"},
    )
    files, size = (
        await db.execute(
            select(func.count(), func.coalesce(func.sum(UploadRow.size), 0)).where(
                UploadRow.owner_id == user.id,
                UploadRow.deleted_at.is_(None),
                or_(
                    UploadRow.status == "ready",
                    (UploadRow.status == "pending") & (UploadRow.expires_at > now),
                ),
            )
        )
    ).one()
    if files + 1 > 10**9 or size + data.size > 10**15:
        raise HTTPException(409, "quota exceeded")
    db.add(row)
    await db.flush()
    await db.commit()
    return UploadGrant(
        upload=Upload.model_validate(row),
        url=url,
        method="PUT",
        fields={},
        headers={"Content-Type": row.content_type},
        expires_at=url_expires,
    )


@app.put("/api/v1/uploads/{upload_id}/content", name="upload_content")
async def upload_content(upload_id: str) -> None:
    raise HTTPException(404)  # not benchmarked; here so the grant's URL can be built
