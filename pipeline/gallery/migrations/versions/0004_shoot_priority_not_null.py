"""Contract (ADR-017, V1): shoots.priority NOT NULL, once every shoot has one and no
version that leaves it empty can run any more (the point of no return)."""

from alembic import op

revision = "0004_shoot_priority_not_null"
down_revision = "0003_shoot_priority_backfill"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE shoots ALTER COLUMN priority SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE shoots ALTER COLUMN priority DROP NOT NULL")
