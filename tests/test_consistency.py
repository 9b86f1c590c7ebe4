"""The consistency checks on a real PostgreSQL: each built-in gallery check counts a
planted violation exactly, a clean dataset has none, a configured SQL check counts,
and a check that cannot run (database down, timeout, a bug, alone or beside others)
is inconclusive, never a pass."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.consistency import check_consistency
from pipeline.consistency.files import FileReferences
from pipeline.consistency.gallery import ACCESS_WITHOUT_PERMISSION, ORPHAN_PHOTOS
from pipeline.consistency.performance import PerformanceImpact
from pipeline.consistency.runner import configured_checks, run_all
from pipeline.consistency.sql import SqlCheck
from pipeline.consistency.storage import Storage
from pipeline.migrations.alembic import AlembicTool
from pipeline.models import ConsistencyRequest, ServiceDatabase, ServiceRef
from pipeline.models.migration import CheckOutcome
from tests.helpers.gallery_db import gallery_database, postgres_server

GALLERY_REVISIONS = Path(__file__).resolve().parent.parent / "pipeline" / "gallery" / "migrations"


@pytest.fixture(scope="module")
def server_dir() -> Iterator[Path]:
    with postgres_server() as pgdata:
        yield pgdata


@pytest.fixture
def url(server_dir: Path) -> str:
    return gallery_database(server_dir)


@pytest.fixture
def connection(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def store_file(connection: psycopg.Connection, files_dir: Path, ref: str, content: bytes) -> None:
    (files_dir / ref).write_bytes(content)
    connection.execute("INSERT INTO files VALUES (%s, %s, %s)", (ref, hashlib.sha256(content).hexdigest(), len(content)))


def plant_clean_gallery(connection: psycopg.Connection, files_dir: Path) -> None:
    """Two clients, a shoot each, three photos with their files, access with permission."""
    connection.execute("INSERT INTO clients (name) VALUES ('ada'), ('bo')")
    connection.execute("INSERT INTO shoots (client_id, name) VALUES (1, 'wedding'), (2, 'portrait')")
    for number in range(3):
        store_file(connection, files_dir, f"photo-{number}.jpg", f"bytes of photo {number}".encode())
        connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (%s, 't', %s)",
                           (1 + number % 2, f"photo-{number}.jpg"))
    connection.execute("INSERT INTO gallery_permissions VALUES (1, 1), (2, 2)")
    connection.execute("INSERT INTO gallery_access VALUES (1, 1), (2, 2)")


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path


def test_a_clean_gallery_has_no_violation(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    checks = [ORPHAN_PHOTOS, FileReferences(files_dir), ACCESS_WITHOUT_PERMISSION, PerformanceImpact(samples=3)]
    outcomes = [check.run(connection) for check in checks]
    assert [outcome.violations for outcome in outcomes] == [0, 0, 0, 0], outcomes


def test_photos_whose_shoot_does_not_exist_are_counted(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (99, 'lost', 'photo-0.jpg')")
    outcome = ORPHAN_PHOTOS.run(connection)
    assert outcome.violations == 1
    assert "shoot does not exist" in outcome.detail


def test_access_without_permission_is_counted(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    connection.execute("INSERT INTO gallery_access VALUES (1, 2)")
    assert ACCESS_WITHOUT_PERMISSION.run(connection).violations == 1


def test_each_broken_file_reference_is_counted(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (1, 'no row', 'never-stored.jpg')")
    store_file(connection, files_dir, "deleted.jpg", b"soon gone")
    (files_dir / "deleted.jpg").unlink()
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (1, 'no file', 'deleted.jpg')")
    store_file(connection, files_dir, "rotten.jpg", b"original")
    (files_dir / "rotten.jpg").write_bytes(b"ORIGINAL")
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (1, 'bad bytes', 'rotten.jpg')")
    connection.execute("INSERT INTO files SELECT '../photo-0.jpg', sha256, size FROM files WHERE ref = 'photo-0.jpg'")
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (1, 'escape', '../photo-0.jpg')")
    outcome = FileReferences(files_dir).run(connection)
    assert outcome.violations == 4, outcome.detail
    for problem in ("1 not in the files table", "2 missing on disk", "1 with a checksum mismatch"):
        assert problem in outcome.detail


def test_bytes_changed_after_verification_are_found_by_the_next_run(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = FileReferences(files_dir)
    assert check.run(connection).violations == 0
    (files_dir / "photo-1.jpg").write_bytes(b"bytes of photo X")
    assert check.run(connection).violations == 1


def test_a_cold_check_hashes_within_its_budget_and_says_what_waits(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = FileReferences(files_dir, hash_budget=2, resample=0)
    assert "1 files not yet checksummed" in check.run(connection).detail
    assert "not yet checksummed" not in check.run(connection).detail


def test_without_a_storage_directory_only_the_files_rows_are_checked(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    (files_dir / "photo-0.jpg").unlink()
    connection.execute("INSERT INTO photos (shoot_id, title, file_ref) VALUES (1, 'no row', 'never-stored.jpg')")
    assert FileReferences(None).run(connection).violations == 1


def test_a_configured_sql_check_counts_its_violations(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = SqlCheck(name="untitled", sql="SELECT count(*) FROM photos WHERE title = 't'")
    assert check.run(connection).violations == 3


def test_a_sql_check_cannot_write(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = SqlCheck(name="sneaky", sql="WITH gone AS (DELETE FROM photos RETURNING 1) SELECT count(*) FROM gone")
    assert check.run(connection).violations is None
    assert connection.execute("SELECT count(*) FROM photos").fetchone() == (3,)


@pytest.mark.parametrize("sql", ["SELECT count(*) FROM no_such_table", "SELECT 'many'", "SELECT 1, 2"])
def test_a_broken_sql_check_is_inconclusive_and_the_next_check_still_runs(connection, sql):
    outcome = SqlCheck(name="broken", sql=sql).run(connection)
    assert outcome.violations is None and outcome.detail.startswith("could not run")
    assert ORPHAN_PHOTOS.run(connection).violations == 0


def test_a_check_over_its_timeout_is_inconclusive(connection):
    outcome = SqlCheck(name="slow", sql="SELECT count(*) FROM pg_sleep(5)", timeout_seconds=0.2).run(connection)
    assert outcome.violations is None
    assert "statement timeout" in outcome.detail
    assert outcome.seconds < 2


def test_an_unreachable_database_makes_every_check_inconclusive(tmp_path, files_dir):
    config = ServiceDatabase.model_validate({
        "production": {"url": "postgresql://postgres:secret@/gallery?host=/nowhere"},
        "staging": {"url": "postgresql://postgres:secret@/gallery?host=/nowhere"},
        "checks": [{"name": "configured", "sql": "SELECT 0"}],
        "builtin_checks": "gallery",
        "files_dir": str(files_dir),
    })
    checks = configured_checks(f"svc-{uuid.uuid4().hex[:6]}", "production", config)
    report = run_all(config.production.url, "production", checks)
    assert len(report.checks) == 5 and report.inconclusive == report.checks
    assert all("could not connect to the production database" in check.detail for check in report.checks)
    assert not any("secret" in check.detail for check in report.checks)


def test_a_database_that_goes_down_between_checks_makes_the_rest_inconclusive(url, connection):
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (connection.info.backend_pid,))
    assert ORPHAN_PHOTOS.run(connection).violations is None


def test_a_query_much_slower_than_its_baseline_is_a_violation(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = PerformanceImpact(samples=3, baseline={"photos of a shoot": 0.0001, "a client's galleries": 10.0})
    check.queries["photos of a shoot"] = "SELECT pg_sleep(0.02)"
    outcome = check.run(connection)
    assert outcome.violations == 1 and "photos of a shoot" in outcome.detail


def test_the_first_performance_run_records_the_baseline(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = PerformanceImpact(samples=3)
    assert "baseline recorded" in check.run(connection).detail
    assert set(check.baseline) == {"photos of a shoot", "a client's galleries"}
    assert "before" in check.run(connection).detail


async def test_the_activity_runs_the_checks_the_worker_configures(url, connection, files_dir, tmp_path, monkeypatch):
    plant_clean_gallery(connection, files_dir)
    databases = {"gallery": {"production": {"url": url}, "staging": {"url": url}, "builtin_checks": "gallery",
                             "checks": [{"name": "untitled", "sql": "SELECT count(*) FROM photos WHERE title = ''"}],
                             "files_dir": str(files_dir)}}
    (tmp_path / "databases.json").write_text(json.dumps({"services": databases}))
    monkeypatch.setenv("PIPELINE_DATABASES_FILE", str(tmp_path / "databases.json"))
    request = ConsistencyRequest(ref=ServiceRef(release_id="r1", service="gallery"), database="production")
    report = await ActivityEnvironment().run(check_consistency, request)
    assert [check.name for check in report.checks] == [
        "untitled", "gallery.shoot_references", "gallery.file_references", "gallery.client_permissions",
        "gallery.performance_impact"]
    assert not report.violated and not report.inconclusive, report


async def test_the_activity_refuses_a_service_without_a_database(monkeypatch):
    monkeypatch.delenv("PIPELINE_DATABASES_FILE", raising=False)
    request = ConsistencyRequest(ref=ServiceRef(release_id="r1", service="stateless"), database="staging")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(check_consistency, request)
    assert raised.value.non_retryable and "stateless" in str(raised.value)


def test_a_slowdown_that_a_second_measurement_does_not_confirm_is_no_violation(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = PerformanceImpact(samples=3, baseline={"photos of a shoot": 0.0001, "a client's galleries": 10.0})
    photos_p95s = iter([0.05, 0.0001])  # a burst of load on the host, then the usual figure
    check._p95 = lambda cursor, sql: next(photos_p95s) if "FROM photos" in sql else 0.0
    assert check.run(connection).violations == 0


def schema(url: str) -> tuple[set, set]:
    """The columns and index definitions of the public tables (Alembic's own aside)."""
    with psycopg.connect(url) as connection:
        columns = set(connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'alembic_version'").fetchall())
        indexes = set(connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'alembic_version'").fetchall())
    return columns, indexes


def test_the_helpers_schema_is_revision_0001(server_dir, url):
    migrated = f"gallery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"postgresql://postgres:@/postgres?host={server_dir}", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {migrated}")
    migrated_url = f"postgresql://postgres:@/{migrated}?host={server_dir}"
    AlembicTool(GALLERY_REVISIONS).upgrade(migrated_url, "0001_base")
    columns, indexes = schema(migrated_url)
    assert ("CREATE INDEX photos_shoot_id ON public.photos USING btree (shoot_id)",) in indexes
    assert schema(url) == (columns, indexes)


class Rendezvous:
    """A check that passes only if `parties` checks are running at the same time."""

    def __init__(self, name: str, barrier: threading.Barrier):
        self.name = name
        self.barrier = barrier

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        self.barrier.wait()
        return CheckOutcome(name=self.name, violations=0)


class Crashing:
    name = "crashing"

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        raise RuntimeError("a bug in the check")


def test_checks_run_at_the_same_time_and_one_that_fails_is_inconclusive(url, connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    barrier = threading.Barrier(2, timeout=10)
    checks = [Rendezvous("first", barrier), SqlCheck(name="broken", sql="SELECT count(*) FROM no_such_table"),
              Crashing(), ORPHAN_PHOTOS, Rendezvous("second", barrier)]
    report = run_all(url, "production", checks)
    assert [check.name for check in report.checks] == ["first", "broken", "crashing", "gallery.shoot_references",
                                                       "second"]
    assert [check.violations for check in report.checks] == [0, None, None, 0, 0], report
    assert "RuntimeError: a bug in the check" in report.checks[2].detail


def test_the_performance_check_runs_after_the_others(url, connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    finished = threading.Event()

    class Marking:
        name = "marking"

        def run(self, connection: psycopg.Connection) -> CheckOutcome:
            finished.set()
            return CheckOutcome(name=self.name, violations=0)

    performance = PerformanceImpact(samples=3)
    measure = performance._measure
    performance._measure = lambda *args: measure(*args) if finished.is_set() else {}
    report = run_all(url, "production", [performance, Marking()])
    assert "photos of a shoot" in report.checks[0].detail, report


def age(directory: Path, seconds: float) -> None:
    """Back-date a directory's mtime, as if its last entry had changed `seconds` ago."""
    then = time.time() - seconds
    os.utime(directory, (then, then))


def test_a_listing_is_reused_while_its_directory_is_unchanged(files_dir):
    (files_dir / "kept.jpg").write_bytes(b"kept")
    age(files_dir, 60)
    storage = Storage(files_dir)
    assert storage.list_names() == {"kept.jpg"}
    stamp = files_dir.stat().st_mtime_ns
    (files_dir / "new.jpg").write_bytes(b"new")
    os.utime(files_dir, ns=(stamp, stamp))
    assert storage.list_names() == {"kept.jpg"}, "an unchanged mtime reuses the listing"
    (files_dir / "kept.jpg").unlink()
    assert storage.list_names() == {"new.jpg"}, "a changed mtime lists the directory again"


def test_a_listing_of_a_directory_changed_just_before_it_is_not_reused(files_dir):
    (files_dir / "sub").mkdir()
    (files_dir / "sub" / "a.jpg").write_bytes(b"a")
    age(files_dir, 60)
    storage = Storage(files_dir)
    assert storage.list_names() == {"sub/a.jpg"}
    stamp = (files_dir / "sub").stat().st_mtime_ns
    (files_dir / "sub" / "a.jpg").unlink()
    os.utime(files_dir / "sub", ns=(stamp, stamp))  # a deletion in the same clock tick leaves the mtime as it was
    assert storage.list_names() == frozenset()


def test_a_directory_that_vanishes_mid_walk_is_skipped(files_dir, monkeypatch):
    (files_dir / "sub").mkdir()
    (files_dir / "kept.jpg").write_bytes(b"kept")
    scandir = os.scandir

    def vanishing(path: str):
        if path.rstrip("/").endswith("/sub"):
            raise FileNotFoundError(path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    assert Storage(files_dir).list_names() == {"kept.jpg"}


def test_a_file_truncated_behind_its_mtime_is_found_within_its_rotation(connection, files_dir):
    plant_clean_gallery(connection, files_dir)
    check = FileReferences(files_dir, resample=0, stat_slice=1)
    assert check.run(connection).violations == 0
    stat = (files_dir / "photo-2.jpg").stat()
    (files_dir / "photo-2.jpg").write_bytes(b"short")
    os.utime(files_dir / "photo-2.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    turns = len(os.listdir(files_dir))
    found = ["1 of the wrong size" in check.run(connection).detail for _ in range(turns + 1)]
    assert found[turns - 1] and found == sorted(found), found  # found within its turns, then on every run
