"""The Alembic migration tool and the migration activities on a real PostgreSQL: steps
are idempotent, a failing revision leaves schema and version as they were, the
compatibility check reads the tool's offline SQL, and errors carry the right retry
semantics (and never a URL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.migrations import check_expand, migrate
from pipeline.database import DATABASES_FILE_VARIABLE
from pipeline.decisions.schema_compat import expand_problems
from pipeline.local.postgres import LocalPostgres
from pipeline.migrations.alembic import AlembicTool
from pipeline.migrations.base import DatabaseUnreachable, MigrationFailed, UnknownRevision
from pipeline.models import MigrationRequest, ServiceRef

REPO = Path(__file__).resolve().parent.parent
TEST_REVISIONS = REPO / "tests" / "migrations_bad"
GALLERY_REVISIONS = REPO / "pipeline" / "gallery" / "migrations"
REF = ServiceRef(release_id="r-migrations", service="items")


def columns(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return [name for (name,) in rows]


def table_exists(url: str, table: str) -> bool:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


@pytest.fixture
def tool() -> AlembicTool:
    return AlembicTool(TEST_REVISIONS)


def test_revisions_are_listed_base_first(tool):
    assert tool.revisions() == ["0001", "0002", "0003", "0004"]
    assert AlembicTool(GALLERY_REVISIONS).revisions() == [
        "0001_base", "0002_shoot_priority", "0003_shoot_priority_backfill", "0004_shoot_priority_not_null",
        "0005_photo_caption",
    ]


def test_upgrade_and_downgrade_are_idempotent(tool, database):
    assert tool.current(database) is None
    assert tool.upgrade(database, "0002") is True
    assert tool.upgrade(database, "0002") is False
    assert tool.upgrade(database, "0001") is False, "an upgrade never goes down"
    assert tool.current(database) == "0002"
    assert columns(database, "items") == ["id", "name", "note"]
    assert tool.downgrade(database, "0001") is True
    assert tool.downgrade(database, "0001") is False
    assert tool.downgrade(database, "0002") is False, "a downgrade never goes up"
    assert columns(database, "items") == ["id", "name"]
    assert tool.downgrade(database, None) is True
    assert tool.downgrade(database, None) is False
    assert tool.current(database) is None
    assert not table_exists(database, "items")


def test_a_failing_revision_leaves_schema_and_version_unchanged(tool, database):
    tool.upgrade(database, "0001")
    with pytest.raises(MigrationFailed, match="division by zero"):
        tool.upgrade(database, "0004")
    assert tool.current(database) == "0001", "revisions 0002 and 0003 of the same step rolled back too"
    assert columns(database, "items") == ["id", "name"]
    assert not table_exists(database, "half_done")


def test_an_unknown_revision_is_named_with_the_known_ones(tool, database):
    with pytest.raises(UnknownRevision, match="'0009'.*0001, 0002, 0003, 0004"):
        tool.upgrade(database, "0009")
    with pytest.raises(UnknownRevision):
        tool.upgrade_sql("0001", "0009")


def test_an_unreachable_database_is_retryable_and_its_url_is_never_told(tool, tmp_path):
    url = f"postgresql://postgres:s3cretpass@/gallery?host={tmp_path}"
    with pytest.raises(DatabaseUnreachable) as raised:
        tool.upgrade(url, "0001")
    assert "s3cretpass" not in str(raised.value)


def test_the_gallery_expand_sql_is_compatible_and_its_contract_is_not():
    gallery = AlembicTool(GALLERY_REVISIONS)
    assert expand_problems(gallery.upgrade_sql("0001_base", "0002_shoot_priority")) == []
    (problem,) = expand_problems(gallery.upgrade_sql("0003_shoot_priority_backfill", "0004_shoot_priority_not_null"))
    assert "SET NOT NULL" in problem
    assert expand_problems(gallery.upgrade_sql(None, "0002_shoot_priority")) == []
    assert expand_problems(gallery.upgrade_sql("0004_shoot_priority_not_null", "0005_photo_caption")) == []


def test_the_gallery_schema_goes_up_and_down(database):
    gallery = AlembicTool(GALLERY_REVISIONS)
    assert gallery.upgrade(database, "0005_photo_caption") is True
    assert "priority" in columns(database, "shoots")
    assert gallery.downgrade(database, "0001_base") is True
    assert "priority" not in columns(database, "shoots")


# The activities, configured from a databases file as the worker is.


@pytest.fixture
def databases(postgres: LocalPostgres, database: str, tmp_path, monkeypatch) -> Iterator[dict[str, str]]:
    """Production (the fresh `database`) and staging databases of the test service,
    in a databases file the activities read."""
    staging_name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(staging_name)
    urls = {"production": database, "staging": postgres.url(staging_name)}
    config = {"services": {"items": {
        "production": {"url": urls["production"]},
        "staging": {"url": urls["staging"]},
        "migrations": {"tool": "alembic", "script_location": str(TEST_REVISIONS)},
    }}}
    path = tmp_path / "databases.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv(DATABASES_FILE_VARIABLE, str(path))
    yield urls
    postgres.drop_database(staging_name)


def request(database: str = "production", revision: str | None = "0002", direction: str = "upgrade", ref=REF):
    return MigrationRequest(ref=ref, database=database, revision=revision, direction=direction)


async def run(activity, argument, heartbeats: list | None = None):
    environment = ActivityEnvironment()
    if heartbeats is not None:
        environment.on_heartbeat = lambda *details: heartbeats.extend(details)
    return await environment.run(activity, argument)


async def test_migrate_reports_before_and_after_and_is_idempotent(databases):
    heartbeats: list = []
    first = await run(migrate, request("staging"), heartbeats)
    assert (first.database, first.before, first.after, first.changed) == ("staging", None, "0002", True)
    assert heartbeats, "the activity heartbeats while Alembic runs in its thread"
    again = await run(migrate, request("staging"))
    assert (again.before, again.after, again.changed) == ("0002", "0002", False)
    assert AlembicTool(TEST_REVISIONS).current(databases["production"]) is None, "production untouched"

    down = await run(migrate, request("staging", revision=None, direction="downgrade"))
    assert (down.before, down.after, down.changed) == ("0002", None, True)


async def test_a_failing_migration_is_not_retried_and_changes_nothing(databases):
    await run(migrate, request(revision="0001"))
    with pytest.raises(ApplicationError) as raised:
        await run(migrate, request(revision="0004"))
    assert (raised.value.type, raised.value.non_retryable) == ("MigrationFailed", True)
    assert AlembicTool(TEST_REVISIONS).current(databases["production"]) == "0001"


async def test_an_unknown_revision_is_refused_without_retry(databases):
    for activity in (migrate, check_expand):
        with pytest.raises(ApplicationError, match="0009.*known: 0001") as raised:
            await run(activity, request(revision="0009"))
        assert (raised.value.type, raised.value.non_retryable) == ("UnknownRevision", True)


async def test_a_service_without_migrations_is_refused_without_retry(databases):
    other = ServiceRef(release_id="r-migrations", service="ledger")
    with pytest.raises(ApplicationError, match="ledger") as raised:
        await run(migrate, request(ref=other))
    assert raised.value.non_retryable


async def test_an_unreachable_database_is_left_to_retries(databases, tmp_path, monkeypatch):
    config = {"services": {"items": {
        "production": {"url": f"postgresql://postgres:s3cretpass@/items?host={tmp_path}"},
        "staging": {"url_env": "ITEMS_STAGING_URL"},
        "migrations": {"script_location": str(TEST_REVISIONS)},
    }}}
    path = tmp_path / "unreachable.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv(DATABASES_FILE_VARIABLE, str(path))
    with pytest.raises(DatabaseUnreachable) as raised:
        await run(migrate, request())
    assert "s3cretpass" not in str(raised.value)


async def test_check_expand_reads_production_current_revision(databases):
    assert await run(check_expand, request(revision="0003")) == [], "all on tables the same step creates"
    await run(migrate, request(revision="0001"))
    assert await run(check_expand, request(revision="0002")) == []
    problems = await run(check_expand, request(revision="0003"))
    assert len(problems) == 1 and "SET NOT NULL" in problems[0]

    await run(migrate, request(revision="0002"))
    assert await run(check_expand, request(revision="0002")) == [], "nothing left to run"
    assert len(await run(check_expand, request(revision="0003"))) == 1
