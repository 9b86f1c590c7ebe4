"""Expand (ADR-017, V3): shoots.priority, nullable, so the running version keeps working."""

from alembic import op

revision = "0002_shoot_priority"
down_revision = "0001_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE shoots ADD COLUMN priority integer NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE shoots DROP COLUMN priority")
