"""A database as the release before the `oauth` plugin left it: the `auth` branch at
b41c7d2e0003, whose upgrade then created `auth_identity` and `auth_oauth_flow`.

That revision creates nothing now, so `create_legacy_tables` runs the body it had, word for
word, through Alembic's operations on the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from core.db import UTCDateTime, new_id, utcnow
from core.kernel import Kernel
from core.migrator import Migrator
from tests.conftest import make_settings
from tests.support.databases import app_engine

LEGACY_TABLES = ("auth_identity", "auth_oauth_flow")
IDENTITY_COLUMNS = ("id", "user_id", "provider", "subject", "email", "created_at", "last_used_at")
FLOW_COLUMNS = (
    "id",
    "state_hash",
    "provider",
    "nonce",
    "code_verifier",
    "redirect_uri",
    "user_id",
    "browser_hash",
    "created_at",
    "expires_at",
    "used_at",
)
_DATETIMES = {"created_at", "last_used_at", "expires_at", "used_at"}


def table(name: str, columns: tuple[str, ...]) -> sa.TableClause:
    """`name` as a bare table of `columns` (timestamps typed as the models type them)."""
    return sa.table(
        name, *[sa.column(c, UTCDateTime() if c in _DATETIMES else sa.String()) for c in columns]
    )


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Legacy:
    """What `legacy_database` stored: an account, the `acme` identity linked to it, and a
    sign-in flow started (not finished) in a browser whose cookie is `cookie`."""

    user_id: str
    identity_id: str
    flow_id: str
    state: str
    nonce: str
    code_verifier: str
    cookie: str
    subject: str = "alice-0001"  # who signs in at the served provider by default


async def legacy_database(url: str, *, plugins: str = "user,auth,mail") -> Legacy:
    """Bring the empty database at `url` to the heads of the release before the `oauth`
    plugin (`plugins` upgraded, then b41c7d2e0003's old tables), holding one account with
    a linked identity and a pending sign-in flow."""
    await Migrator(Kernel.build(make_settings(url, enabled_plugins=plugins))).upgrade()
    now = utcnow().replace(microsecond=0)
    legacy = Legacy(
        user_id=new_id("usr"),
        identity_id=new_id("aid"),
        flow_id=new_id("oaf"),
        state="state-" + "s" * 38,
        nonce="nonce-" + "n" * 38,
        code_verifier="verifier-" + "v" * 40,
        cookie="c" * 43,
    )
    engine = app_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(create_legacy_tables)
            await connection.execute(
                sa.text(
                    'INSERT INTO "user" (id, email, email_key, name, role, is_active, '
                    "email_verified, created_at, updated_at) VALUES (:id, 'ann@example.com', "
                    "'ann@example.com', 'Ann', 'user', true, true, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"id": legacy.user_id},
            )
            await connection.execute(
                sa.insert(table("auth_identity", IDENTITY_COLUMNS)).values(
                    id=legacy.identity_id,
                    user_id=legacy.user_id,
                    provider="acme",
                    subject=legacy.subject,
                    email="ann@acme.example",
                    created_at=now - timedelta(days=30),
                    last_used_at=None,
                )
            )
            await connection.execute(
                sa.insert(table("auth_oauth_flow", FLOW_COLUMNS)).values(
                    id=legacy.flow_id,
                    state_hash=sha256(legacy.state),
                    provider="acme",
                    nonce=legacy.nonce,
                    code_verifier=legacy.code_verifier,
                    redirect_uri=None,
                    user_id=None,
                    browser_hash=sha256(legacy.cookie),
                    created_at=now,
                    expires_at=now + timedelta(minutes=10),
                    used_at=None,
                )
            )
    finally:
        await engine.dispose()
    return legacy


async def rows(url: str, name: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every row of table `name`, ordered by id, timestamps as aware datetimes."""
    engine = app_engine(url)
    try:
        async with engine.connect() as connection:
            bare = table(name, columns)
            result = await connection.execute(sa.select(bare).order_by(bare.c.id))
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


def create_legacy_tables(connection: Connection) -> None:
    """For `inspect_database`-style use: `await run_sync(create_legacy_tables)`."""
    with Operations.context(MigrationContext.configure(connection)):
        _upgrade_of_b41c7d2e0003()


def _upgrade_of_b41c7d2e0003() -> None:
    op.create_table(
        "auth_identity",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_auth_identity_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_identity")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_auth_identity_provider_subject")),
    )
    op.create_index(op.f("ix_auth_identity_user_id"), "auth_identity", ["user_id"])
    op.create_table(
        "auth_oauth_flow",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("browser_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_auth_oauth_flow_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_oauth_flow")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_auth_oauth_flow_state_hash")),
    )
    op.create_index(op.f("ix_auth_oauth_flow_user_id"), "auth_oauth_flow", ["user_id"])
    op.create_index(op.f("ix_auth_oauth_flow_expires_at"), "auth_oauth_flow", ["expires_at"])
