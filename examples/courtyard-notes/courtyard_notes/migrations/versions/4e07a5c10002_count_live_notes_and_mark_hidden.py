"""count live notes per owner; mark notes hidden with their owner

Revision ID: 4e07a5c10002
Revises: 4e07a5c10001
Create Date: 2026-12-02

`notes_owner` holds each user's number of live notes, the row note creation claims a slot
on; it starts from the notes already there. `notes_note.hidden_by` marks the notes hidden
because their owner's account was deleted (none yet: earlier versions did not tell them
apart, so those stay deleted on restore).
"""

import sqlalchemy as sa
from alembic import op

revision = "4e07a5c10002"
down_revision = "4e07a5c10001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes_note", sa.Column("hidden_by", sa.String(length=32), nullable=True))
    op.create_table(
        "notes_owner",
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("live", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name=op.f("fk_notes_owner_owner_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_notes_owner")),
    )
    note = sa.table(
        "notes_note", sa.column("owner_id", sa.String), sa.column("deleted_at", sa.DateTime)
    )
    owner = sa.table("notes_owner", sa.column("owner_id", sa.String), sa.column("live", sa.Integer))
    live_per_owner = (
        sa.select(note.c.owner_id, sa.func.count())
        .where(note.c.deleted_at.is_(None))
        .group_by(note.c.owner_id)
    )
    op.execute(owner.insert().from_select(["owner_id", "live"], live_per_owner))


def downgrade() -> None:
    op.drop_table("notes_owner")
    op.drop_column("notes_note", "hidden_by")
