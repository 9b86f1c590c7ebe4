"""The sample gallery's stores: in memory by default, PostgreSQL with GALLERY_DATABASE_URL
(photos' bytes in GALLERY_FILES_DIR, their checksum in `files`), on the real server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic import command
from alembic.config import Config

from pipeline.database import database_url
from pipeline.errors import PermanentTargetError
from pipeline.gallery.store import SCHEMA_MIGRATIONS, MemoryStore, PostgresStore, open_store
from pipeline.local.postgres import LocalPostgres, start_local_databases
from pipeline.models import Slot
from pipeline.targets.local import LocalTarget
from tests.helpers.local import free_port, local_environment


def migrated(url: str, revision: str) -> str:
    config = Config()
    config.set_main_option("script_location", str(SCHEMA_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)
    return url


def one(url: str, query: str) -> tuple:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchone()


def test_without_a_database_the_gallery_keeps_photos_in_memory() -> None:
    store = open_store({})
    assert isinstance(store, MemoryStore)
    photo = store.add_photo("sunset", b"...")
    assert store.photo_list() == [photo] and photo["id"] == 1


def test_a_database_needs_a_files_dir() -> None:
    with pytest.raises(ValueError, match="GALLERY_FILES_DIR"):
        open_store({"GALLERY_DATABASE_URL": "postgresql://x"})


def test_postgres_store_round_trip_writes_the_file_and_its_checksum(database: str, tmp_path: Path) -> None:
    store = PostgresStore(migrated(database, "0001_base"), tmp_path)
    first = store.add_photo("sunset", b"jpeg bytes")
    second = store.add_photo("dawn", b"more bytes")
    assert store.photo_list() == [first, second]
    assert (tmp_path / first["file_ref"]).read_bytes() == b"jpeg bytes"
    sha256, size = one(database, f"SELECT sha256, size FROM files WHERE ref = '{first['file_ref']}'")
    assert (sha256, size) == (hashlib.sha256(b"jpeg bytes").hexdigest(), 10)
    assert one(database, "SELECT count(*) FROM shoots") == (1,)  # the default shoot, created once
    assert one(database, "SELECT count(*) FROM photos p JOIN shoots s ON s.id = p.shoot_id") == (2,)


def test_a_version_writing_priority_fills_it_and_needs_the_expand(database: str, tmp_path: Path) -> None:
    writer = PostgresStore(migrated(database, "0001_base"), tmp_path, writes_priority=True)
    with pytest.raises(psycopg.errors.UndefinedColumn):
        writer.add_photo("too early", b"x")
    PostgresStore(database, tmp_path).add_photo("old version", b"x")
    assert one(database, "SELECT count(*) FROM photos") == (1,)  # the failed upload left no row
    migrated(database, "0002_shoot_priority")
    writer.add_photo("new version", b"y")
    assert one(database, "SELECT count(*) FROM shoots WHERE priority IS NULL") == (0,)


def test_the_broken_version_records_references_to_missing_files(database: str, tmp_path: Path) -> None:
    store = PostgresStore(migrated(database, "0001_base"), tmp_path, broken_file_refs=True)
    photo = store.add_photo("lost", b"bytes")
    assert not (tmp_path / photo["file_ref"]).exists()
    assert one(database, "SELECT count(*) FROM photos p LEFT JOIN files f ON f.ref = p.file_ref WHERE f.ref IS NULL") == (1,)


def test_the_gallery_process_serves_photos_from_postgres(database: str, tmp_path: Path) -> None:
    """Two processes on one database see the same photos: the state is in PostgreSQL."""
    migrated(database, "0001_base")
    environ = {**os.environ, "GALLERY_DATABASE_URL": database, "GALLERY_FILES_DIR": str(tmp_path)}
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen([sys.executable, "-m", "pipeline.gallery.app", "--port", str(port), "--version", "1.0.0",
                          "--instance-id", f"test-{port}"], env=environ)
        for port in ports
    ]
    try:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) for port in ports]
        for client in clients:
            wait_ready(client)
        created = clients[0].post("/api/photos", json={"title": "shared"})
        assert created.status_code == 201
        assert created.json() in clients[1].get("/api/photos").json()
        stored = tmp_path / created.json()["file_ref"]
        sha256 = one(database, "SELECT sha256 FROM files")[0]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha256
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def wait_ready(client: httpx.Client, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the gallery did not become ready")


async def test_the_local_target_gives_each_slot_its_database_from_the_workers_file(
    postgres: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging gets the staging database, the canary the production one; a release's env
    cannot choose either."""
    service = f"gallery{uuid.uuid4().hex[:6]}"
    config = start_local_databases(postgres.pgdata.parent, service, tmp_path / "files")
    databases = tmp_path / "databases.json"
    databases.write_text(config.model_dump_json())
    monkeypatch.setenv("PIPELINE_DATABASES_FILE", str(databases))
    env = local_environment(tmp_path / "local")
    target = LocalTarget(env, ready_timeout_seconds=20)
    try:
        with pytest.raises(PermanentTargetError, match="GALLERY_DATABASE_URL may not be set by a release"):
            await target.deploy(service, Slot.CANARY, "1.0.0", {"GALLERY_DATABASE_URL": "postgresql://elsewhere"})
        for slot in (Slot.STAGING, Slot.CANARY):
            await target.deploy(service, slot, "1.0.0", {})
            await target.wait_ready(service, slot, "1.0.0", lambda message: None)
            async with httpx.AsyncClient(base_url=target.endpoint(service, slot)) as client:
                assert (await client.post("/api/photos", json={"title": str(slot)})).status_code == 201
        for which, slot in (("production", Slot.CANARY), ("staging", Slot.STAGING)):
            url = database_url(service, which)
            assert one(url, "SELECT array_agg(title) FROM photos") == ([str(slot)],)
    finally:
        await env.stop_all()
