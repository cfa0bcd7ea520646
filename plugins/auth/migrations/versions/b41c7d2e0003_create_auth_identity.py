"""create auth_identity and auth_oauth_flow (OAuth / OpenID Connect sign-in)

Revision ID: b41c7d2e0003
Revises: b41c7d2e0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "b41c7d2e0003"
down_revision = "b41c7d2e0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_oauth_flow_expires_at"), table_name="auth_oauth_flow")
    op.drop_index(op.f("ix_auth_oauth_flow_user_id"), table_name="auth_oauth_flow")
    op.drop_table("auth_oauth_flow")
    op.drop_index(op.f("ix_auth_identity_user_id"), table_name="auth_identity")
    op.drop_table("auth_identity")
