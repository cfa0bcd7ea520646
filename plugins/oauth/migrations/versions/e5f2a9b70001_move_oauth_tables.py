"""oauth_identity and oauth_flow: moved from the auth plugin's tables, or created

Revision ID: e5f2a9b70001
Revises:
Create Date: 2026-12-06

Until the `oauth` plugin existed, the `auth` plugin kept these rows in `auth_identity`
and `auth_oauth_flow` (its revision b41c7d2e0003, which creates nothing any more). Here:

- a database that has those tables (it recorded b41c7d2e0003 under an earlier release)
  gets them moved, every row kept (the linked identities, and the flows in progress, so
  a sign-in started before the upgrade finishes after it), their indexes and constraints
  renamed as the naming convention names them for the new tables. On PostgreSQL the table,
  its constraints and its indexes are renamed in place. SQLite cannot rename a constraint,
  so the new table is created, the rows copied, and the old table dropped (the rebuild
  SQLite documents for any such change), all in the upgrade's one transaction;
- any other database gets the tables created.

Either way the result is the same schema. The downgrade moves the rows back to the old
names: with this branch at base, the database is as the earlier release left it (which
may then run on it again); auth's b41c7d2e0003, which this revision depends on, drops
them when `auth` itself goes below it.
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "e5f2a9b70001"
down_revision = None
branch_labels = ("oauth",)
# auth's revision that created the tables moved here; the user branch's, whose `user`
# table every row points at (already a dependency of auth's, named for the reader).
depends_on = ("b41c7d2e0003", "9a7e5c310001")

IDENTITY = ("auth_identity", "oauth_identity")
FLOW = ("auth_oauth_flow", "oauth_flow")
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


def create_identity(table: str) -> None:
    op.create_table(
        table,
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f(f"fk_{table}_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("provider", "subject", name=op.f(f"uq_{table}_provider_subject")),
    )
    op.create_index(op.f(f"ix_{table}_user_id"), table, ["user_id"])


def create_flow(table: str) -> None:
    op.create_table(
        table,
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
            ["user_id"], ["user.id"], name=op.f(f"fk_{table}_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("state_hash", name=op.f(f"uq_{table}_state_hash")),
    )
    op.create_index(op.f(f"ix_{table}_user_id"), table, ["user_id"])
    op.create_index(op.f(f"ix_{table}_expires_at"), table, ["expires_at"])


def identity_names(table: str) -> tuple[list[str], list[str]]:
    """The constraints and the indexes of the identity table called `table`."""
    return (
        [f"pk_{table}", f"uq_{table}_provider_subject", f"fk_{table}_user_id_user"],
        [f"ix_{table}_user_id"],
    )


def flow_names(table: str) -> tuple[list[str], list[str]]:
    """The constraints and the indexes of the flow table called `table`."""
    return (
        [f"pk_{table}", f"uq_{table}_state_hash", f"fk_{table}_user_id_user"],
        [f"ix_{table}_user_id", f"ix_{table}_expires_at"],
    )


TableMaker = Callable[[str], None]
Names = Callable[[str], tuple[list[str], list[str]]]
TABLES: list[tuple[tuple[str, str], tuple[str, ...], TableMaker, Names]] = [
    (IDENTITY, IDENTITY_COLUMNS, create_identity, identity_names),
    (FLOW, FLOW_COLUMNS, create_flow, flow_names),
]


def move(old: str, new: str, columns: tuple[str, ...], create: TableMaker, names: Names) -> None:
    """Table `old` becomes table `new`, rows, constraints and indexes included."""
    if op.get_bind().dialect.name == "postgresql":
        op.rename_table(old, new)
        old_constraints, old_indexes = names(old)
        new_constraints, new_indexes = names(new)
        for before, after in zip(old_constraints, new_constraints, strict=True):
            # A primary key's or unique constraint's index is renamed with it.
            op.execute(f'ALTER TABLE "{new}" RENAME CONSTRAINT "{before}" TO "{after}"')
        for before, after in zip(old_indexes, new_indexes, strict=True):
            op.execute(f'ALTER INDEX "{before}" RENAME TO "{after}"')
        return
    create(new)
    listed = ", ".join(columns)
    op.execute(f'INSERT INTO "{new}" ({listed}) SELECT {listed} FROM "{old}"')
    op.drop_table(old)  # its indexes go with it


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for (old, new), columns, create, names in TABLES:
        if old in existing:
            move(old, new, columns, create, names)
        else:
            create(new)


def downgrade() -> None:
    for (old, new), columns, create, names in reversed(TABLES):
        move(new, old, columns, create, names)
