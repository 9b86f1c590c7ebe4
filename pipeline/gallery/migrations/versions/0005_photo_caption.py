"""Expand: photos.caption, nullable, so the running version keeps working (the demo's
last release carries it, and its rollback takes it away again)."""

from alembic import op

revision = "0005_photo_caption"
down_revision = "0004_shoot_priority_not_null"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE photos ADD COLUMN caption text NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE photos DROP COLUMN caption")
