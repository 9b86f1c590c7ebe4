"""Deliberately failing: changes the schema, then fails, so a test can see that
nothing of it (nor of the revisions before it in the same step) stays."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute("CREATE TABLE half_done (id int)")
    op.execute("ALTER TABLE items ADD COLUMN doomed int")
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    op.execute("DROP TABLE half_done")
