"""Where the sample gallery keeps its photos: in memory (the default, as it always did),
or in PostgreSQL when GALLERY_DATABASE_URL is set, with each photo's bytes in
GALLERY_FILES_DIR/<ref> and their checksum in the `files` table.

The gallery never migrates its schema: the pipeline does, as a release phase
(pipeline/gallery/migrations). Two knobs make versions behave differently on it, as
the ADR's example needs:
- GALLERY_WRITES_PRIORITY=1: this version fills `shoots.priority` (needs revision >= 0002);
- GALLERY_BROKEN_FILE_REFS=1: uploads record a file reference whose file is never
  written (the bad release the consistency checks catch).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psycopg

SCHEMA_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The gallery's Alembic script location, which the pipeline (never the gallery) runs."""
DEFAULT_SHOOT_PRIORITY = 1
LISTED_PHOTOS = 500
"""GET /api/photos lists the most recent photos only: the table grows under load."""
POOL_SIZE = 8
CONNECT_TIMEOUT_SECONDS = 5
DEFAULT_SHOOT_LOCK = 11_001
"""Advisory lock id: concurrent first uploads create one default shoot, not several."""


class PhotoStore(Protocol):
    def add_photo(self, title: str, content: bytes) -> dict: ...

    def photo_list(self) -> list[dict]: ...


class MemoryStore:
    """Photos in a list, lost when the process exits; the content is not kept."""

    def __init__(self) -> None:
        self._photos: list[dict] = []
        self._lock = threading.Lock()

    def add_photo(self, title: str, content: bytes) -> dict:
        with self._lock:
            photo = {"id": len(self._photos) + 1, "title": title, "uploaded_at": time.time()}
            self._photos.append(photo)
            return photo

    def photo_list(self) -> list[dict]:
        with self._lock:
            return list(self._photos)


class ConnectionPool:
    """A few autocommit connections reused across the server's request threads; a
    broken one (the database restarted) is dropped and the next use connects again."""

    def __init__(self, url: str, size: int = POOL_SIZE):
        self._url = url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._size = size

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        connection = self._take()
        try:
            with connection.transaction():
                yield connection
        finally:
            self._give_back(connection)

    def _take(self) -> psycopg.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)

    def _give_back(self, connection: psycopg.Connection) -> None:
        if connection.closed or connection.broken or self._idle.qsize() >= self._size:
            connection.close()
        else:
            self._idle.put(connection)


class PostgresStore:
    def __init__(self, url: str, files_dir: Path, *, writes_priority: bool = False, broken_file_refs: bool = False):
        self._pool = ConnectionPool(url)
        self._files_dir = files_dir
        self._writes_priority = writes_priority
        self._broken_file_refs = broken_file_refs

    def add_photo(self, title: str, content: bytes) -> dict:
        """The file first, then its rows in one transaction: a failed upload may leave
        an unreferenced file behind, never a reference to a missing one (unless this
        version is the broken one)."""
        ref = f"{uuid.uuid4().hex}.jpg"
        if not self._broken_file_refs:
            self._write_file(ref, content)
        with self._pool.transaction() as connection:
            shoot_id = self._shoot_for_upload(connection)
            if not self._broken_file_refs:
                connection.execute(
                    "INSERT INTO files (ref, sha256, size) VALUES (%s, %s, %s)",
                    (ref, hashlib.sha256(content).hexdigest(), len(content)),
                )
            row = connection.execute(
                "INSERT INTO photos (shoot_id, title, file_ref) VALUES (%s, %s, %s) "
                "RETURNING id, title, extract(epoch FROM uploaded_at)::float8, file_ref",
                (shoot_id, title, ref),
            ).fetchone()
        return _photo(row)

    def photo_list(self) -> list[dict]:
        with self._pool.transaction() as connection:
            rows = connection.execute(
                "SELECT id, title, extract(epoch FROM uploaded_at)::float8, file_ref FROM "
                "(SELECT * FROM photos ORDER BY id DESC LIMIT %s) AS latest ORDER BY id",
                (LISTED_PHOTOS,),
            ).fetchall()
        return [_photo(row) for row in rows]

    def _write_file(self, ref: str, content: bytes) -> None:
        """Atomically: a reader never sees a half-written photo with the final name."""
        self._files_dir.mkdir(parents=True, exist_ok=True)
        temporary = self._files_dir / f".{ref}.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, self._files_dir / ref)

    def _shoot_for_upload(self, connection: psycopg.Connection) -> int:
        """The latest shoot, created with a default client the first time; a version that
        writes priority also fills it on the shoot it uploads to."""
        shoot_id = self._latest_shoot(connection)
        if shoot_id is None:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (DEFAULT_SHOOT_LOCK,))
            shoot_id = self._latest_shoot(connection) or self._create_default_shoot(connection)
        if self._writes_priority:
            connection.execute(
                "UPDATE shoots SET priority = %s WHERE id = %s AND priority IS NULL", (DEFAULT_SHOOT_PRIORITY, shoot_id)
            )
        return shoot_id

    @staticmethod
    def _latest_shoot(connection: psycopg.Connection) -> int | None:
        row = connection.execute("SELECT id FROM shoots ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def _create_default_shoot(self, connection: psycopg.Connection) -> int:
        client_id = connection.execute("INSERT INTO clients (name) VALUES ('Default client') RETURNING id").fetchone()[0]
        if self._writes_priority:
            query = "INSERT INTO shoots (client_id, name, priority) VALUES (%s, 'Default shoot', %s) RETURNING id"
            return connection.execute(query, (client_id, DEFAULT_SHOOT_PRIORITY)).fetchone()[0]
        query = "INSERT INTO shoots (client_id, name) VALUES (%s, 'Default shoot') RETURNING id"
        return connection.execute(query, (client_id,)).fetchone()[0]


def _photo(row: tuple) -> dict:
    photo_id, title, uploaded_at, file_ref = row
    return {"id": photo_id, "title": title, "uploaded_at": uploaded_at, "file_ref": file_ref}


def open_store(environ: dict[str, str]) -> PhotoStore:
    """The store the environment asks for: PostgreSQL with GALLERY_DATABASE_URL (which
    needs GALLERY_FILES_DIR), in memory otherwise."""
    url = environ.get("GALLERY_DATABASE_URL")
    if not url:
        return MemoryStore()
    files_dir = environ.get("GALLERY_FILES_DIR")
    if not files_dir:
        raise ValueError("GALLERY_FILES_DIR must be set with GALLERY_DATABASE_URL")
    return PostgresStore(
        url,
        Path(files_dir),
        writes_priority=environ.get("GALLERY_WRITES_PRIORITY") == "1",
        broken_file_refs=environ.get("GALLERY_BROKEN_FILE_REFS") == "1",
    )
