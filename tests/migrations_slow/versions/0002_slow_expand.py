"""Expand, slowly enough to be caught in flight: real DDL (an audit table and a
nullable column), then a statement that sleeps and records the application in the
audit table, all in the step's one transaction. Each application that commits leaves
exactly one 'expand' row, with its transaction id; one that is cut off leaves none.

The sleep is inside an INSERT so that the compatibility check (which reads the offline
SQL and allows INSERT, CREATE TABLE and nullable columns) lets the expand through."""

from alembic import op

revision = "0002_slow_expand"
down_revision = "0001_base"
SLEEP_SECONDS = 4


def upgrade() -> None:
    op.execute(
        "CREATE TABLE migration_audit (id serial PRIMARY KEY, step text NOT NULL, "
        "xid xid8 NOT NULL DEFAULT pg_current_xact_id(), at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    op.execute("ALTER TABLE shoots ADD COLUMN slow_note text NULL")
    op.execute(f"INSERT INTO migration_audit (step) SELECT 'expand' FROM pg_sleep({SLEEP_SECONDS})")


def downgrade() -> None:
    op.execute("ALTER TABLE shoots DROP COLUMN slow_note")
    op.execute("DROP TABLE migration_audit")
