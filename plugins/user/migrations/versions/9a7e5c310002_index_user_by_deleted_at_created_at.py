"""index user by deleted_at, created_at (member statistics)

Revision ID: 9a7e5c310002
Revises: 9a7e5c310001
Create Date: 2026-12-06
"""

from alembic import op

revision = "9a7e5c310002"
down_revision = "9a7e5c310001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # How many live users were created since an instant: `deleted_at IS NULL`, then a
    # range of `created_at`, answered from this index alone on SQLite and PostgreSQL.
    op.create_index(op.f("ix_user_deleted_at_created_at"), "user", ["deleted_at", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_deleted_at_created_at"), table_name="user")
