"""create auth_identity and auth_oauth_flow (now: nothing; the oauth plugin owns them)

Revision ID: b41c7d2e0003
Revises: b41c7d2e0002
Create Date: 2026-11-25

Releases before the `oauth` plugin created `auth_identity` and `auth_oauth_flow` here.
Those tables are the `oauth` plugin's now (`oauth_identity`, `oauth_flow`): its first
revision, e5f2a9b70001, `depends_on` this one and moves them, rows and all, when a
database has them, or creates its tables when it has none. So this revision stays (a
database that recorded it must find it) but creates nothing any more, and `auth` works
without those tables. That is safe at every revision:

- a database that recorded b41c7d2e0003 under an earlier release never runs it again:
  its tables are there for the oauth revision to move (now, or once oauth is enabled);
- a database at b41c7d2e0002 or below, or a new one, gets nothing here, and the oauth
  revision (which needs this one first) creates its tables when oauth is enabled;
- going down, the oauth revision runs first and moves its tables back to these names;
  going below this revision then drops them, as this revision's downgrade always did,
  and leaves a database that never had them alone.
"""

import sqlalchemy as sa
from alembic import op

revision = "b41c7d2e0003"
down_revision = "b41c7d2e0002"
branch_labels = None
depends_on = None

TABLES = ("auth_oauth_flow", "auth_identity")


def upgrade() -> None:
    pass


def downgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for table in TABLES:
        if table in existing:
            op.drop_table(table)  # its indexes go with it
