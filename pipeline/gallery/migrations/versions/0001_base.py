"""The gallery's base schema: clients, shoots, files, photos and client gallery access.

photos.shoot_id and photos.file_ref deliberately have no foreign keys: the consistency
checks exist to catch what the schema does not enforce (ADR-017). Both are indexed: the
gallery's pages list a shoot's photos, and the checks join photos to shoots and files."""

from alembic import op

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE clients (id serial PRIMARY KEY, name text NOT NULL)")
    op.execute(
        "CREATE TABLE shoots (id serial PRIMARY KEY, client_id int NOT NULL REFERENCES clients, "
        "name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("CREATE TABLE files (ref text PRIMARY KEY, sha256 text NOT NULL, size bigint NOT NULL)")
    op.execute(
        "CREATE TABLE photos (id serial PRIMARY KEY, shoot_id int NOT NULL, title text NOT NULL, "
        "file_ref text NOT NULL, uploaded_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("CREATE INDEX photos_shoot_id ON photos (shoot_id)")
    op.execute("CREATE INDEX photos_file_ref ON photos (file_ref)")
    op.execute(
        "CREATE TABLE gallery_access (client_id int NOT NULL, shoot_id int NOT NULL, PRIMARY KEY (client_id, shoot_id))"
    )
    op.execute(
        "CREATE TABLE gallery_permissions (client_id int NOT NULL, shoot_id int NOT NULL, "
        "PRIMARY KEY (client_id, shoot_id))"
    )


def downgrade() -> None:
    op.execute("DROP TABLE gallery_permissions, gallery_access, photos, files, shoots, clients")
