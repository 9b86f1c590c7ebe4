"""A worker SIGKILLed in the middle of a production expand (issue #11), on the real local
stack: the Temporal dev server, a worker process, Traefik, gallery processes and the
local PostgreSQL. The service's databases file points at tests/migrations_slow/, whose
expand does real DDL and then sleeps inside an INSERT into an audit table, all in the
step's one transaction: each application that commits leaves exactly one audit row.

How long the crash costs: the migrate activity heartbeats every second with a heartbeat
timeout of 5 s (HEARTBEAT in workflows/release/calls.py, which `_change` gives every
migrate), so the killed attempt is declared lost about 5 s after the kill and retried
1 s later (CHANGE_RETRIES' initial interval), on the restarted worker: about 6 s, plus
the retry's own 4 s sleep. The test takes 48 to 65 s on two shared cores: 14 to 23 s
to start the stack, 23 to 38 s of release, of which the crash costs about 10 s (the
5 s heartbeat timeout is the floor; a shorter one is the workflow's to choose)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, local_stack
from pipeline.models import Outcome
from tests.helpers.local import local_environment
from tests.helpers.migration_stack import (
    BASE,
    Session,
    query,
    revision,
    sessions_running,
    transaction_status,
    use_revisions,
)
from tests.helpers.real_stack import QUICK_POLICY, start_release

pytestmark = pytest.mark.integration

SLOW_REVISIONS = Path(__file__).resolve().parent / "migrations_slow"
SLOW_EXPAND, SLOW_CONTRACT = "0002_slow_expand", "0003_slow_contract"
IN_FLIGHT = "pg_sleep("
"""The expand's slow statement, as pg_stat_activity shows it while it runs."""


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[Stack]:
    """A fresh local world on the slow revisions. Its state lives outside pytest's
    temporary tree, which another pytest session starting meanwhile makes private again,
    cutting the PostgreSQL server's user off in the middle of its initdb (see the
    `postgres` fixture in tests/conftest.py)."""
    state_dir = Path(tempfile.mkdtemp(prefix="pipeline-crash-"))
    try:
        async with local_stack(local_environment(state_dir)) as stack:
            use_revisions(stack, SLOW_REVISIONS)
            assert revision(stack) == BASE
            yield stack
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


async def statement_in_flight(stack: Stack, within: float) -> Session:
    """Poll pg_stat_activity until one production session runs the slow statement."""
    deadline = time.monotonic() + within
    while not (running := sessions_running(stack, IN_FLIGHT)):
        if time.monotonic() > deadline:
            pytest.fail(f"the production expand did not start within {within}s")
        await asyncio.sleep(0.05)
    assert len(running) == 1, running
    return running[0]


async def migrate_attempts(handle: WorkflowHandle, database: str, direction: str) -> list[int]:
    """From the history: the attempt that ended each migrate activity on `database`."""
    scheduled: dict[int, bytes] = {}
    attempts = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "migrate":
                scheduled[event.event_id] = b"".join(payload.data for payload in attributes.input.payloads)
        elif event.HasField("activity_task_started_event_attributes"):
            attributes = event.activity_task_started_event_attributes
            data = scheduled.get(attributes.scheduled_event_id, b"")
            if f'"database":"{database}"'.encode() in data and f'"direction":"{direction}"'.encode() in data:
                attempts.append(attributes.attempt)
    return attempts


async def test_a_worker_killed_during_expand_finishes_the_release_with_each_step_applied_once(stack: Stack):
    """The release is promoted and contracted; production is at the contract revision;
    the audit table holds one 'expand' and one 'contract' row, the expand committed by
    the retry (a second attempt); and the killed attempt's transaction, which had
    created the audit table, added the column and was sleeping inside its INSERT, was
    aborted by PostgreSQL and left nothing."""
    handle = await start_release(
        stack, "1.0.0", QUICK_POLICY, migration={"expand": SLOW_EXPAND, "contract": SLOW_CONTRACT}
    )
    killed = await statement_in_flight(stack, within=90)
    assert killed.xid is not None, "the killed attempt's transaction had written (its DDL) before the sleep"
    await stack.worker.kill()
    assert transaction_status(stack, killed.xid) == "in progress", "the kill landed inside the expand's transaction"
    await stack.worker.start()

    result = await asyncio.wait_for(handle.result(), 120)
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert result.migration is not None and result.migration.expanded and result.migration.contracted
    assert revision(stack) == SLOW_CONTRACT

    audit = query(stack, "SELECT step, xid::text FROM migration_audit ORDER BY id")
    assert [step for step, _ in audit] == ["expand", "contract"], audit
    expand_xid = audit[0][1]
    assert expand_xid != killed.xid and transaction_status(stack, expand_xid) == "committed"
    assert transaction_status(stack, killed.xid) == "aborted", "PostgreSQL rolled the killed attempt back"
    assert sessions_running(stack, IN_FLIGHT) == []
    assert query(stack, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'shoots'::regclass AND attname = 'slow_note'") == [(1,)]

    assert await migrate_attempts(handle, "production", "upgrade") == [2, 1], "expand retried once; contract first time"
