"""create upload_file

Revision ID: c7e1a4f90001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "c7e1a4f90001"
down_revision = None
branch_labels = ("upload",)
depends_on = "9a7e5c310001"  # the user branch: every upload belongs to a user


def upgrade() -> None:
    op.create_table(
        "upload_file",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'deleted')", name=op.f("ck_upload_file_status")
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_upload_file_size")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name=op.f("fk_upload_file_owner_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_file")),
        sa.UniqueConstraint("key", name=op.f("uq_upload_file_key")),
    )
    op.create_index(op.f("ix_upload_file_deleted_at"), "upload_file", ["deleted_at"])
    op.create_index("ix_upload_file_owner_id", "upload_file", ["owner_id", "id"])
    op.create_index("ix_upload_file_status_expires_at", "upload_file", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_upload_file_status_expires_at", table_name="upload_file")
    op.drop_index("ix_upload_file_owner_id", table_name="upload_file")
    op.drop_index(op.f("ix_upload_file_deleted_at"), table_name="upload_file")
    op.drop_table("upload_file")
