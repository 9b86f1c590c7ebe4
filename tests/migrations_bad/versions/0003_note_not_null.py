"""Contract: the column becomes required, which no expand may do."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE items ALTER COLUMN note SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE items ALTER COLUMN note DROP NOT NULL")
