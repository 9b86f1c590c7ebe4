"""Expand/contract migrations inside the rollout, on the time-skipping server (the
world behind the activities is FakeWorld; the real migration tool and checks run on a
real PostgreSQL in tests/test_migrations.py and tests/test_consistency.py)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from pipeline.models import Outcome
from tests.helpers.fakes import FAILING, FakeWorld
from tests.helpers.harness import REQUEST, Drive, status

POLICY = {"required_approvals": [], "canary_duration_seconds": 120, "step_interval_seconds": 60, "bake_seconds": 120}
MIGRATING = {**REQUEST, "policy": POLICY, "migration": {"expand": "0002", "contract": "0003"}}


def migrations(world: FakeWorld) -> list[tuple]:
    return world.called("migrate")


async def test_expand_on_staging_then_production_before_the_canary_and_contract_after_retire(world: FakeWorld, start):
    result = await (await start(MIGRATING)).result()

    assert result.outcome is Outcome.PROMOTED, result.reason
    assert migrations(world) == [
        ("staging", "upgrade", "0002"),
        ("staging", "upgrade", "0003"),
        ("production", "upgrade", "0002"),
        ("production", "upgrade", "0003"),
    ]
    order = [name for name, _ in world.calls if name in ("migrate", "deploy_version", "retire_version")]
    assert order.index("retire_version") < len(order) - 1 and order[-1] == "migrate", "contract only after retire"
    first_canary_deploy = world.calls.index(("deploy_version", ("canary", "2.0.0")))
    assert world.calls.index(("migrate", ("production", "upgrade", "0002"))) < first_canary_deploy
    assert result.migration.contracted and not result.migration.reversed


async def test_a_consistency_violation_during_the_canary_rolls_back_and_reverses_the_expand(world: FakeWorld, start):
    checks = iter([{}, {}, {}] + [{"photos_without_shoot": 4}] * 100)
    world.violations = lambda: next(checks)
    result = await (await start(MIGRATING)).result()

    assert result.outcome is Outcome.ROLLED_BACK and "photos_without_shoot: 4 violations" in result.reason
    assert result.breach is None, "a consistency violation is no metric: the checks are in result.consistency"
    assert [check.name for check in result.consistency.violated] == ["photos_without_shoot"]
    assert world.weights[-1] == 0
    assert migrations(world)[-2:] == [("production", "downgrade", "0001"), ("staging", "downgrade", "0001")], (
        "the expand is reversed after traffic is back, then staging follows production"
    )
    assert result.migration.reversed and result.migration.staging_restored and not result.migration.contracted


async def test_a_breach_with_keep_leaves_the_expand_in_place(world: FakeWorld, start):
    world.canary_health = lambda weight: FAILING
    request = {**MIGRATING, "policy": {**POLICY, "migration_rollback": "keep"}}
    handle = await start(request)
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK
    assert [m for m in migrations(world) if m[1] == "downgrade"] == [], "production keeps its expand, staging follows"
    assert any("safe for the previous version" in e.message for e in (await status(handle)).timeline)


async def test_an_expand_that_would_break_stable_fails_before_production_changes(world: FakeWorld, start):
    world.expand_problems = ["ALTER TABLE shoots DROP COLUMN name: drops a column the running version reads"]
    result = await (await start(MIGRATING)).result()

    assert result.outcome is Outcome.FAILED and "not backward-compatible" in result.reason and "DROP COLUMN" in result.reason
    assert [m for m in migrations(world) if m[0] == "production"] == []
    assert ("deploy_version", ("canary", "2.0.0")) not in world.calls


async def test_a_failing_expand_fails_the_release_with_production_untouched(world: FakeWorld, start):
    world.failing_revisions = {"0002"}
    result = await (await start(MIGRATING)).result()
    assert result.outcome is Outcome.FAILED and "column contains null values" in result.reason
    assert world.weights == [] and world.revisions["production"] == "0001"


async def test_contract_waits_for_its_precondition_then_applies(world: FakeWorld, start, drive: Drive):
    handle = await start(MIGRATING)
    await drive.until(handle, lambda s: s.phase == "bake", within=60)
    world.failing_revisions = {"0003"}
    await drive.until(handle, lambda s: any("waits for its precondition" in e.message for e in s.timeline), within=60)
    world.failing_revisions = set()
    result = await handle.result()
    assert result.outcome is Outcome.PROMOTED and result.migration.contracted


async def test_a_contract_that_never_applies_fails_with_the_schema_still_expanded(world: FakeWorld, start, drive: Drive):
    handle = await start({**MIGRATING, "policy": {**POLICY, "contract_wait_seconds": 120}})
    await drive.until(handle, lambda s: s.phase == "bake", within=60)
    world.failing_revisions = {"0003"}
    result = await handle.result()
    assert result.outcome is Outcome.FAILED and "the schema stays expanded" in result.reason
    assert result.migration.expanded and not result.migration.contracted and not result.migration.reversed


async def test_a_contract_without_an_expand_is_refused_naming_the_field(start):
    handle = await start({**REQUEST, "migration": {"contract": "0003"}})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "migration.expand" in str(failure.value.cause)


async def test_a_backfill_runs_after_retire_and_before_contract_on_each_database(world: FakeWorld, start):
    request = {**MIGRATING, "migration": {"expand": "0002", "backfill": "0003", "contract": "0004"}}
    result = await (await start(request)).result()

    assert result.outcome is Outcome.PROMOTED, result.reason
    assert migrations(world) == [
        ("staging", "upgrade", "0002"),
        ("staging", "upgrade", "0003"),
        ("staging", "upgrade", "0004"),
        ("production", "upgrade", "0002"),
        ("production", "upgrade", "0003"),
        ("production", "upgrade", "0004"),
    ]
    order = [call for call in world.calls if call[0] in ("migrate", "retire_version")]
    assert order.index(("retire_version", "1.0.0")) < order.index(("migrate", ("production", "upgrade", "0003")))
    assert result.migration.backfilled and result.migration.contracted


async def test_a_release_failing_in_staging_takes_staging_back_to_its_revision(world: FakeWorld, start):
    world.failing_suites = {"unit"}
    result = await (await start(MIGRATING)).result()

    assert result.outcome is Outcome.FAILED
    assert migrations(world) == [("staging", "upgrade", "0002"), ("staging", "downgrade", "0001")]
    assert world.revisions == {"production": "0001", "staging": "0001"}
    assert not result.migration.expanded and result.migration.staging_restored
