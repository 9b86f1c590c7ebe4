"""Contract: a default for the expand's column, and the application recorded in the
audit table in the same transaction (one 'contract' row per commit)."""

from alembic import op

revision = "0003_slow_contract"
down_revision = "0002_slow_expand"


def upgrade() -> None:
    op.execute("ALTER TABLE shoots ALTER COLUMN slow_note SET DEFAULT ''")
    op.execute("INSERT INTO migration_audit (step) VALUES ('contract')")


def downgrade() -> None:
    op.execute("DELETE FROM migration_audit WHERE step = 'contract'")
    op.execute("ALTER TABLE shoots ALTER COLUMN slow_note DROP DEFAULT")
