"""Migrations on the real local stack, shared by tests/test_migration_release.py and
benchmarks/migration.py: the revisions and policies, a trickle of counted uploads, reads
of the production database (from the worker's databases file, never from a release),
and the rollback's timing from the workflow history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack
from pipeline.local.env import write_atomically
from pipeline.local.loadgen import LoadGenerator
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, activity_completions

BASE, EXPAND, BACKFILL, CONTRACT = (
    "0001_base", "0002_shoot_priority", "0003_shoot_priority_backfill", "0004_shoot_priority_not_null"
)
DEMO_MIGRATION = {"expand": EXPAND, "backfill": BACKFILL, "contract": CONTRACT}
POLICY = {**QUICK_POLICY, "bake_seconds": 4}
CANARY_POLICY = {**POLICY, "canary_duration_seconds": 12}
"""Long enough for stable and canary each to take uploads on the expanded schema."""
WRITES_PRIORITY = {"GALLERY_WRITES_PRIORITY": "1"}
BROKEN_FILE_REFS = {"GALLERY_BROKEN_FILE_REFS": "1"}
LOAD_PER_SECOND = 30
def failed_gets(load: LoadGenerator) -> list[tuple[str, int]]:
    return [(served.version, served.status) for served in load.log if served.status != 200]


def production_url(stack: Stack) -> str:
    """The production database's URL, from the worker's databases file (never from a release)."""
    config = json.loads(stack.local.databases_file.read_text())
    return config["services"][SERVICE]["production"]["url"]


def query(stack: Stack, sql: str) -> list[tuple]:
    with psycopg.connect(production_url(stack), autocommit=True) as connection:
        return connection.execute(sql).fetchall()


def revision(stack: Stack) -> str:
    return query(stack, "SELECT version_num FROM alembic_version")[0][0]


def photo_ids(stack: Stack) -> set[int]:
    return {row[0] for row in query(stack, "SELECT id FROM photos")}


def shoot_ids(stack: Stack) -> set[int]:
    return {row[0] for row in query(stack, "SELECT id FROM shoots")}


def shoots_without_priority(stack: Stack) -> int:
    return query(stack, "SELECT count(*) FROM shoots WHERE priority IS NULL")[0][0]


def photos_with_missing_files(stack: Stack) -> int:
    return query(stack, "SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.ref = p.file_ref)")[0][0]


def delete_photos_with_missing_files(stack: Stack) -> int:
    """The operator's repair after a bad release: its photos whose files were never written."""
    return len(query(stack, "DELETE FROM photos p WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.ref = p.file_ref) RETURNING id"))


async def rollback_seconds(handle: WorkflowHandle) -> float:
    """From the workflow history: from the completion of the check_consistency activity
    that found the violation (the last one before the rollback's downgrade) to the
    completion of the downgrade migrate activity (traffic is on stable before it starts)."""
    completions = await activity_completions(handle)
    downgrade = next(i for i, (name, data, _) in enumerate(completions) if name == "migrate" and b'"downgrade"' in data)
    found = max(i for i, (name, _, _) in enumerate(completions[:downgrade]) if name == "check_consistency")
    return (completions[downgrade][2] - completions[found][2]).total_seconds()


def use_revisions(stack: Stack, script_location: Path) -> None:
    """Point the worker's databases file (read at each use, so no restart) at another
    Alembic revisions directory for the service's databases."""
    config = json.loads(stack.local.databases_file.read_text())
    config["services"][SERVICE]["migrations"]["script_location"] = str(script_location)
    write_atomically(stack.local.databases_file, json.dumps(config, indent=2))


@dataclass(frozen=True)
class Session:
    pid: int
    xid: str | None
    """The transaction id (as text) once the transaction has written, else None."""


def sessions_running(stack: Stack, fragment: str) -> list[Session]:
    """The other sessions on the production database running a statement that
    contains `fragment`, from pg_stat_activity."""
    with psycopg.connect(production_url(stack), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid, backend_xid::text FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND strpos(query, %s) > 0",
            (fragment,),
        ).fetchall()
    return [Session(pid, xid) for pid, xid in rows]


def transaction_status(stack: Stack, xid: str) -> str:
    """PostgreSQL's word on a transaction: 'in progress', 'committed' or 'aborted'
    (a fresh cluster's transaction ids are still in epoch 0, so an xid is its xid8)."""
    return query(stack, f"SELECT pg_xact_status('{int(xid)}'::xid8)")[0][0]
