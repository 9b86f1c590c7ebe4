"""Backfill (ADR-017, V2 -> V1): every shoot the new version has not prioritised yet
gets the default priority, so that contract's NOT NULL can hold. Run once the previous
version, which leaves priority empty, is retired; data only, no schema change."""

from alembic import op

revision = "0003_shoot_priority_backfill"
down_revision = "0002_shoot_priority"
branch_labels = None
depends_on = None

DEFAULT_SHOOT_PRIORITY = 1
"""The sample gallery's own default (pipeline/gallery/store.py); a revision keeps its
values literal, since it must mean the same whatever the code becomes."""


def upgrade() -> None:
    op.execute(f"UPDATE shoots SET priority = {DEFAULT_SHOOT_PRIORITY} WHERE priority IS NULL")


def downgrade() -> None:
    """Nothing: which values were backfilled is not recorded, and a filled nullable
    column serves both versions. Downgrading past 0002 drops the column anyway."""
