"""The gallery's base schema, which the local world already applied from
pipeline/gallery/migrations (same revision id): this directory is only ever pointed at
databases that are there, so the base itself is not repeated."""

revision = "0001_base"
down_revision = None


def upgrade() -> None:
    raise NotImplementedError("apply the base from pipeline/gallery/migrations")


def downgrade() -> None:
    raise NotImplementedError("the base is the gallery's")
