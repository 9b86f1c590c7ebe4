"""Expand/contract migrations inside a real rollout (issue #11): the Temporal dev
server, a worker process, Traefik, gallery processes and the local PostgreSQL, under
steady load with a trickle of uploads, every response counted.

A bad release (its uploads record file references whose files are never written) is
caught by the consistency checks during its canary, rolled back and its expand
reversed, with no row lost; then the demo migration (a version that writes
shoots.priority, expand 0002, backfill 0003, contract 0004) goes through expand, canary, promotion
and contract without one failed request, the stable version serving on the expanded
schema meanwhile.

The releases build on each other, so the tests of this module run in order on one stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.uploads import Uploads
from pipeline.models import Outcome, Phase
from tests.helpers.local import local_environment
from tests.helpers.migration_stack import (
    BASE,
    BROKEN_FILE_REFS,
    CANARY_POLICY,
    CONTRACT,
    DEMO_MIGRATION,
    EXPAND,
    LOAD_PER_SECOND,
    POLICY,
    WRITES_PRIORITY,
    delete_photos_with_missing_files,
    failed_gets,
    photo_ids,
    photos_with_missing_files,
    revision,
    rollback_seconds,
    shoot_ids,
    shoots_without_priority,
)
from tests.helpers.real_stack import SERVICE, approve_all, served_by, start_release, until

pytestmark = pytest.mark.integration

@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    """1.0.0 installed on the base schema, with photos it uploaded: its default shoot
    has no priority (1.0.0 does not know the column)."""
    async with local_stack(local_environment(tmp_path_factory.mktemp("stack"))) as stack:
        result = await approve_all(await start_release(stack, "1.0.0", POLICY))
        assert result.outcome is Outcome.PROMOTED, result.reason
        async with Uploads(stack.local.http_url, SERVICE, every=0.05) as uploads:
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
        Uploads(stack.local.http_url, SERVICE) as uploads,
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
    assert result.breach is None and [c.name for c in result.consistency.violated] == ["gallery.file_references"]
    assert result.migration.expanded and result.migration.reversed and not result.migration.contracted
    assert result.migration.staging_restored, "staging follows production back to the base schema"
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
    created has no priority; 2.0.0 fills it on the shoots it uploads to, and the backfill,
    once 1.0.0 is retired, fills the rest, so contract (SET NOT NULL) applies at once."""
    assert delete_photos_with_missing_files(stack) > 0
    assert photos_with_missing_files(stack) == 0
    assert revision(stack) == BASE and shoot_ids(stack), "the expand will add priority as NULL to 1.0.0's shoot"
    photos_before = photo_ids(stack)

    async with (
        LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=LOAD_PER_SECOND) as load,
        Uploads(stack.local.http_url, SERVICE) as uploads,
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
