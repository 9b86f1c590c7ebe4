"""Expand/contract migrations inside a real rollout (issue #11): the Temporal dev
server, a worker process, Traefik, gallery processes and the local PostgreSQL, under
steady load with a trickle of uploads, every response counted.

A bad release (its uploads record file references whose files are never written) is
caught by the consistency checks during its canary, rolled back and its expand
reversed, with no row lost; then the demo migration (a version that writes
shoots.priority, expand 0002 / contract 0003) goes through expand, canary, promotion
and contract without one failed request, the stable version serving on the expanded
schema meanwhile.

The releases build on each other, so the tests of this module run in order on one stack."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import Outcome, Phase
from tests.helpers.local import local_environment
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, approve_all, served_by, start_release, until

pytestmark = pytest.mark.integration

BASE, EXPAND, CONTRACT = "0001_base", "0002_shoot_priority", "0003_shoot_priority_not_null"
DEMO_MIGRATION = {"expand": EXPAND, "contract": CONTRACT}
POLICY = {**QUICK_POLICY, "bake_seconds": 4}
CANARY_POLICY = {**POLICY, "canary_duration_seconds": 12}
"""Long enough for stable and canary each to take uploads on the expanded schema."""
WRITES_PRIORITY = {"GALLERY_WRITES_PRIORITY": "1"}
BROKEN_FILE_REFS = {"GALLERY_BROKEN_FILE_REFS": "1"}
LOAD_PER_SECOND = 30
UPLOAD_EVERY_SECONDS = 0.25


@dataclass
class Upload:
    at: float
    version: str
    status: int
    photo_id: int | None


@dataclass
class Uploads:
    """A trickle of photo uploads (POST /api/photos) through the router, each counted,
    an unreachable router as 599, like the LoadGenerator's GETs."""

    router_url: str
    every: float = UPLOAD_EVERY_SECONDS
    log: list[Upload] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> Uploads:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def failed(self) -> list[Upload]:
        return [upload for upload in self.log if not 200 <= upload.status < 300]

    def since(self, moment: float) -> list[Upload]:
        return [upload for upload in self.log if upload.at >= moment]

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.router_url, timeout=5) as client:
            sent = 0
            while True:
                sent += 1
                await self._one(client, f"photo {sent}")
                await asyncio.sleep(self.every)

    async def _one(self, client: httpx.AsyncClient, title: str) -> None:
        try:
            response = await client.post("/api/photos", json={"title": title}, headers={"Host": f"{SERVICE}.localhost"})
        except httpx.HTTPError:
            self.log.append(Upload(time.monotonic(), "unreachable", 599, None))
            return
        photo_id = response.json().get("id") if response.status_code == 201 else None
        self.log.append(Upload(time.monotonic(), response.headers.get("X-Served-Version", "router"), response.status_code, photo_id))


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
    scheduled: dict[int, tuple[str, bytes]] = {}
    completions: list[tuple[str, bytes, datetime]] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            data = b"".join(payload.data for payload in attributes.input.payloads)
            scheduled[event.event_id] = (attributes.activity_type.name, data)
        elif event.HasField("activity_task_completed_event_attributes"):
            name, data = scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
            completions.append((name, data, event.event_time.ToDatetime()))
    downgrade = next(i for i, (name, data, _) in enumerate(completions) if name == "migrate" and b'"downgrade"' in data)
    found = max(i for i, (name, _, _) in enumerate(completions[:downgrade]) if name == "check_consistency")
    return (completions[downgrade][2] - completions[found][2]).total_seconds()


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    """1.0.0 installed on the base schema, with photos it uploaded: its default shoot
    has no priority (1.0.0 does not know the column)."""
    async with local_stack(local_environment(tmp_path_factory.mktemp("stack"))) as stack:
        result = await approve_all(await start_release(stack, "1.0.0", POLICY))
        assert result.outcome is Outcome.PROMOTED, result.reason
        async with Uploads(stack.local.http_url, every=0.05) as uploads:
            while len(uploads.log) < 5:
                await asyncio.sleep(0.05)
        assert uploads.failed() == [] and {upload.version for upload in uploads.log} == {"1.0.0"}
        assert revision(stack) == BASE
        yield stack


async def test_a_bad_release_is_caught_by_the_consistency_checks_and_its_expand_reversed_without_losing_a_row(
    stack: Stack,
):
    photos_before, shoots_before = photo_ids(stack), shoot_ids(stack)
    async with (
        LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=LOAD_PER_SECOND) as load,
        Uploads(stack.local.http_url) as uploads,
    ):
        await served_by(load, "1.0.0", count=30)
        handle = await start_release(
            stack, "3.0.0", {**CANARY_POLICY, "canary_duration_seconds": 60}, env=BROKEN_FILE_REFS, migration={"expand": EXPAND}
        )
        result = await approve_all(handle)
        assert set(await served_by(load, "1.0.0", count=30)) == {"1.0.0"}, "stable still serves after the rollback"
        after_rollback = time.monotonic()
        await asyncio.sleep(1)

    assert result.outcome is Outcome.ROLLED_BACK, result.reason
    assert "data consistency" in result.reason and "gallery.file_references" in result.reason, result.reason
    assert result.breach is not None and result.breach.severity == "immediate" and result.breach.metric == "file_corruption_rate"
    assert result.migration.expanded and result.migration.reversed and not result.migration.contracted
    assert revision(stack) == BASE, "the expand is reversed once traffic is back on stable"

    assert failed_gets(load) == [], f"{len(failed_gets(load))} of {len(load.log)} GETs failed"
    assert uploads.failed() == [], uploads.failed()
    assert len(load.log) > 200 and len(uploads.log) > 20
    assert any(upload.version == "3.0.0" for upload in uploads.log), "the canary took uploads"
    assert {upload.version for upload in uploads.since(after_rollback)} <= {"1.0.0"}

    photos_after = photo_ids(stack)
    assert photos_before <= photos_after, "no photo lost"
    assert {upload.photo_id for upload in uploads.log} <= photos_after, "every accepted upload is still there"
    assert shoots_before <= shoot_ids(stack), "no shoot lost"
    broken = [upload for upload in uploads.log if upload.version == "3.0.0"]
    assert photos_with_missing_files(stack) == len(broken), "exactly the bad version's uploads point at missing files"

    seconds = await rollback_seconds(handle)
    assert 0 < seconds < 30, seconds


async def test_the_demo_migration_expands_canaries_promotes_and_contracts_without_a_failed_request(stack: Stack):
    """An operator first repairs what the bad release wrote (its photos whose files were
    never written): until then every migrating release refuses to expand. The shoot 1.0.0
    created has no priority; contract (SET NOT NULL) can apply only once 2.0.0 filled it,
    which it does on the shoot it uploads to: the trickle of uploads does that before the
    contract, so the release contracts without waiting."""
    assert delete_photos_with_missing_files(stack) > 0
    assert photos_with_missing_files(stack) == 0
    assert revision(stack) == BASE and shoot_ids(stack), "the expand will add priority as NULL to 1.0.0's shoot"
    photos_before = photo_ids(stack)

    async with (
        LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=LOAD_PER_SECOND) as load,
        Uploads(stack.local.http_url) as uploads,
    ):
        await served_by(load, "1.0.0", count=30)
        handle = await start_release(stack, "2.0.0", CANARY_POLICY, env=WRITES_PRIORITY, migration=DEMO_MIGRATION)
        await until(handle, lambda s: s.phase is Phase.CANARY and s.canary_weight > 0, within=120)
        in_canary = time.monotonic()
        assert revision(stack) == EXPAND, "production is expanded before the canary"
        await until(handle, lambda s: s.canary_weight == 100 or s.outcome is not None, within=120)
        during_canary = [upload for upload in uploads.since(in_canary) if upload.at < time.monotonic()]
        result = await approve_all(handle)
        assert result.outcome is Outcome.PROMOTED, result.reason
        assert set(await served_by(load, "2.0.0", count=30)) == {"2.0.0"}

    assert result.migration.expanded and result.migration.contracted and not result.migration.reversed
    assert revision(stack) == CONTRACT
    assert shoots_without_priority(stack) == 0

    stable_on_expanded = [upload for upload in during_canary if upload.version == "1.0.0"]
    assert stable_on_expanded and all(upload.status == 201 for upload in stable_on_expanded), "1.0.0 wrote on the expanded schema"
    assert any(upload.version == "2.0.0" for upload in during_canary)
    assert failed_gets(load) == [], f"{len(failed_gets(load))} of {len(load.log)} GETs failed"
    assert uploads.failed() == [], uploads.failed()
    assert len(load.log) > 300 and len(uploads.log) > 30
    assert photos_before | {upload.photo_id for upload in uploads.log} <= photo_ids(stack)
