"""create auth_action_token (password reset and email verification tokens)

Revision ID: b41c7d2e0002
Revises: b41c7d2e0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "b41c7d2e0002"
down_revision = "b41c7d2e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_action_token",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("bound_to", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('password_reset', 'verify_email')",
            name=op.f("ck_auth_action_token_purpose"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_auth_action_token_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_action_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_action_token_token_hash")),
    )
    op.create_index(op.f("ix_auth_action_token_user_id"), "auth_action_token", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_action_token_user_id"), table_name="auth_action_token")
    op.drop_table("auth_action_token")
