"""create notes

Revision ID: 4e07a5c10001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "4e07a5c10001"
down_revision = None
branch_labels = ("notes",)
depends_on = "9a7e5c310001"  # the user branch: every note belongs to a `user` row


def upgrade() -> None:
    op.create_table(
        "notes_note",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name=op.f("fk_notes_note_owner_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes_note")),
    )
    op.create_index(op.f("ix_notes_note_deleted_at"), "notes_note", ["deleted_at"])
    op.create_index("ix_notes_note_owner_id_id", "notes_note", ["owner_id", "id"])
    op.create_table(
        "notes_tag",
        sa.Column("note_id", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["note_id"],
            ["notes_note.id"],
            name=op.f("fk_notes_tag_note_id_notes_note"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("note_id", "tag", name=op.f("pk_notes_tag")),
    )
    op.create_index(op.f("ix_notes_tag_tag"), "notes_tag", ["tag"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notes_tag_tag"), table_name="notes_tag")
    op.drop_table("notes_tag")
    op.drop_index("ix_notes_note_owner_id_id", table_name="notes_note")
    op.drop_index(op.f("ix_notes_note_deleted_at"), table_name="notes_note")
    op.drop_table("notes_note")
