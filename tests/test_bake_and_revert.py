"""After promotion, on the time-skipping server: bake (a breach goes back to the warm
previous version, a pass retires it), revert (warm, cold, refused), and a rollback
that will not send traffic to a broken version. The world behind the activities is
FakeWorld; the real targets' revert, window and health are tested in
tests/test_local_revert.py and tests/test_kubernetes_target.py."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from pipeline.models import Metric, Outcome, Phase
from tests.helpers.fakes import FAILING, HEALTHY, FakeWorld
from tests.helpers.harness import REQUEST, Drive, result_with, status
from workflows.release import ReleaseWorkflow

NO_APPROVALS = {"required_approvals": [], "canary_duration_seconds": 120, "step_interval_seconds": 60}
RELEASE = {**REQUEST, "policy": NO_APPROVALS}


def revert(to: str | None = None, **extra) -> dict:
    request = {"service": REQUEST["service"], "revert": {"actor": "carol", "reason": "checkout broken"}, **extra}
    return request if to is None else {**request, "version": to}


async def test_bake_breach_sends_all_traffic_back_to_the_previous_version(world: FakeWorld, start):
    world.promoted_health = FAILING
    result = await (await start(RELEASE)).result()

    assert result.outcome is Outcome.ROLLED_BACK and result.after_promotion is True
    assert result.breach is not None and result.breach.metric is Metric.ERROR_RATE
    assert "during bake" in result.reason
    assert world.called("revert_version") == ["1.0.0"]
    assert world.called("retire_version") == ["2.0.0"], "the version that failed its bake is retired, not the previous"
    assert result.stable_version == "1.0.0"


async def test_bake_that_passes_retires_the_previous_version_after_bake_seconds(world: FakeWorld, start, time_skipping_env):
    handle = await start({**RELEASE, "policy": {**NO_APPROVALS, "bake_seconds": 900}})
    began = await time_skipping_env.get_current_time()
    result = await handle.result()

    assert result.outcome is Outcome.PROMOTED and result.after_promotion is False
    assert world.called("revert_version") == [] and world.called("retire_version") == ["1.0.0"]
    assert world.called("promote_version") == [2], "the release's rollback window goes to the target"
    elapsed = (await time_skipping_env.get_current_time()) - began
    assert elapsed.total_seconds() >= 120 + 4 * 60 + 900
    phases = [entry.phase for entry in (await status(handle)).timeline]
    assert Phase.BAKE in phases and phases.index(Phase.BAKE) > phases.index(Phase.FINALIZE)


async def test_kill_switch_during_bake_reverts_at_once(world: FakeWorld, start, drive: Drive):
    handle = await start({**RELEASE, "policy": {**NO_APPROVALS, "bake_seconds": 3600}})
    await drive.until(handle, lambda s: s.phase is Phase.BAKE, within=60)

    receipt = await handle.execute_update(ReleaseWorkflow.submit_kill_switch, {"actor": "dan", "reason": "pager"})
    result = await handle.result()

    assert receipt.seconds < 1 and "1.0.0" in receipt.message
    assert result.outcome is Outcome.ROLLED_BACK and result.after_promotion is True
    assert world.called("revert_version") == ["1.0.0"]


async def test_rollback_onto_an_unhealthy_version_keeps_the_split_until_the_kill_switch(
    world: FakeWorld, start, drive: Drive
):
    world.promoted_health = FAILING
    world.unhealthy = {"1.0.0"}
    handle = await start(RELEASE)
    held = await drive.until(handle, lambda s: s.hold is not None and s.hold.gate == "rollback_target", within=60)

    assert "1.0.0 is failing" in held.hold.reason and world.called("revert_version") == []
    assert any("roll back to 1.0.0 held" in entry.message for entry in held.timeline)
    await handle.signal(ReleaseWorkflow.kill_switch, {"actor": "erin", "reason": "roll back anyway"})
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK and world.called("revert_version") == ["1.0.0"]


async def test_rollback_goes_on_when_the_target_recovers(world: FakeWorld, start, drive: Drive):
    world.canary_health = lambda weight: FAILING
    world.unhealthy = {"1.0.0"}
    handle = await start(RELEASE)
    await drive.until(handle, lambda s: s.hold is not None and s.hold.gate == "rollback_target", within=60)
    assert world.weights == [10], "the canary keeps its split while stable is broken"

    world.unhealthy = set()
    result = await result_with(handle)
    assert result.outcome is Outcome.ROLLED_BACK and world.weights == [10, 0]


async def test_warm_revert_is_a_routing_change_allowed_without_approvals(world: FakeWorld, start):
    result = await (await start(revert())).result()

    assert result.outcome is Outcome.REVERTED and result.stable_version == "0.9.0"
    assert result.revert is not None and result.revert.warm and result.revert.actor == "carol"
    assert result.revert.from_version == "1.0.0" and result.revert.to_version == "0.9.0"
    assert world.called("revert_version") == ["0.9.0"]
    assert world.called("deploy_version") == [] and world.called("run_test_suite") == []


async def test_cold_revert_deploys_the_version_with_its_recorded_env_and_promotes_it(world: FakeWorld, start):
    result = await (await start(revert("0.8.0"))).result()

    assert result.outcome is Outcome.REVERTED and result.revert.warm is False
    assert world.called("deploy_version") == [("canary", "0.8.0")]
    assert len(world.called("promote_version")) == 1 and world.called("revert_version") == []


@pytest.mark.parametrize(
    ("to", "why"),
    [
        ("0.7.0", "outside the rollback window"),
        ("0.1.0", "was never promoted"),
        ("1.0.0", "already is the stable version"),
    ],
)
async def test_revert_refused_changes_nothing(world: FakeWorld, start, to: str, why: str):
    result = await (await start(revert(to))).result()

    assert result.outcome is Outcome.FAILED and why in result.reason
    assert [name for name, _ in world.calls if name != "version_health"] == []


async def test_revert_while_a_release_of_the_service_runs_is_refused(world: FakeWorld, start, drive: Drive):
    release = await start({**REQUEST})
    await drive.until(release, lambda s: s.pending_approval == "canary")
    service = (await status(release)).service

    result = await (await start({**revert(), "service": service})).result()
    assert result.outcome is Outcome.FAILED and "another release" in result.reason
    assert world.called("revert_version") == []


async def test_bake_seconds_negative_is_refused_naming_the_field(start):
    handle = await start({**REQUEST, "policy": {"bake_seconds": -1}})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "bake_seconds" in str(failure.value.cause)


async def test_bake_without_a_pre_release_baseline_still_checks_thresholds(world: FakeWorld, start):
    world.stable_health = HEALTHY.model_copy(update={"requests": 0})
    world.promoted_health = FAILING
    result = await (await start(RELEASE)).result()
    assert result.outcome is Outcome.ROLLED_BACK and result.after_promotion


async def test_a_warm_version_outside_the_window_may_be_returned_to(world: FakeWorld, start):
    world.window = world.window.model_copy(update={"warm": ["0.7.0"]})
    result = await (await start(revert("0.7.0"))).result()
    assert result.outcome is Outcome.REVERTED and result.revert.warm and world.called("revert_version") == ["0.7.0"]
