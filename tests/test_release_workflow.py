"""ReleaseWorkflow's decisions on the time-skipping server: a 30-minute canary and
four 5-minute steps take seconds. The world behind the activities is FakeWorld."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from pipeline.models import Metric, Outcome, Phase
from tests.helpers.fakes import FAILING, HEALTHY, NO_TRAFFIC, SLOW, FakeWorld
from tests.helpers.harness import REQUEST, Drive, result_with, status
from workflows.release import ReleaseWorkflow


async def test_default_rollout_promotes_through_every_step(drive: Drive, world: FakeWorld, start):
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary"), lambda: drive.approve(handle, "production", "bob"))

    assert result.outcome is Outcome.PROMOTED
    assert world.weights == [10, 25, 50, 75, 100]
    assert world.called("deploy_version") == [("staging", "2.0.0"), ("canary", "2.0.0")]
    assert world.called("run_test_suite") == ["unit", "integration", "e2e", "performance", "security"]
    assert len(world.called("promote_version")) == 1 and world.called("retire_version") == ["1.0.0"]
    assert [(a.stage, a.approver) for a in result.approvals] == [("canary", "alice"), ("production", "bob")]
    final = await status(handle)
    assert final.phase is Phase.DONE and final.outcome is Outcome.PROMOTED and final.stable_version == "2.0.0"
    assert final.last_analysis is not None and final.last_analysis.verdict == "pass"


async def test_default_timings_hold_the_canary_thirty_minutes_and_each_step_five(drive: Drive, world: FakeWorld, start, time_skipping_env):
    handle = await start()
    began = await time_skipping_env.get_current_time()
    await result_with(handle, lambda: drive.approve(handle, "canary"), lambda: drive.approve(handle, "production"))
    elapsed = (await time_skipping_env.get_current_time()) - began
    assert elapsed.total_seconds() >= 30 * 60 + 4 * 5 * 60 + 600  # canary, four steps, bake


async def test_canary_breach_rolls_back_before_production_approval(drive: Drive, world: FakeWorld, start):
    world.canary_health = lambda weight: FAILING
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary"))

    assert result.outcome is Outcome.ROLLED_BACK
    assert result.breach is not None and result.breach.metric is Metric.ERROR_RATE and result.breach.value == 0.2
    assert "error_rate" in result.reason and "<= 0.01" in result.reason
    assert world.weights == [10, 0]
    assert world.called("stop_version")[-2:] == ["canary", "staging"]
    assert world.called("promote_version") == []


async def test_breach_during_progressive_shift_sends_all_traffic_back_to_stable(drive: Drive, world: FakeWorld, start):
    world.canary_health = lambda weight: SLOW if weight >= 50 else HEALTHY
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary"), lambda: drive.approve(handle, "production"))

    assert result.outcome is Outcome.ROLLED_BACK
    assert result.breach.metric is Metric.P95_LATENCY_MS
    assert world.weights == [10, 25, 50, 0]
    assert "at 50% canary traffic" in result.reason


async def test_canary_stays_watched_while_waiting_for_production_approval(drive: Drive, world: FakeWorld, start):
    handle = await start()
    await drive.approve(handle, "canary")
    await drive.until(handle, lambda s: s.pending_approval == "production")
    world.canary_health = lambda weight: FAILING
    result = await handle.result()
    assert result.outcome is Outcome.ROLLED_BACK and world.weights == [10, 0]


async def test_failed_staging_suite_stops_the_release_with_production_untouched(world: FakeWorld, start):
    world.failing_suites = {"e2e"}
    result = await (await start()).result()

    assert result.outcome is Outcome.FAILED
    assert "e2e" in result.reason and "2 tests failed" in result.reason
    assert world.weights == []
    assert world.called("deploy_version") == [("staging", "2.0.0")]


async def test_kill_switch_during_canary_rolls_back_at_once(drive: Drive, world: FakeWorld, start):
    handle = await start()

    async def pull_kill_switch():
        await drive.until(handle, lambda s: s.phase is Phase.CANARY and s.canary_weight == 10)
        await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "support tickets spiking", "actor": "carol"})

    result = await result_with(handle, lambda: drive.approve(handle, "canary"), pull_kill_switch)
    assert result.outcome is Outcome.ROLLED_BACK
    assert result.reason == "kill switch pulled by carol: support tickets spiking"
    assert world.weights == [10, 0]


async def test_reject_at_canary_approval_touches_no_production_traffic(drive: Drive, world: FakeWorld, start):
    handle = await start()

    async def reject():
        await drive.until(handle, lambda s: s.pending_approval == "canary")
        await handle.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "dave", "comment": "wrong build"})

    result = await result_with(handle, reject)
    assert result.outcome is Outcome.REJECTED
    assert result.reason == "rejected at canary by dave: wrong build"
    assert world.weights == [] and ("canary", "2.0.0") not in world.called("deploy_version")


async def test_reject_at_production_approval_rolls_the_canary_back(drive: Drive, world: FakeWorld, start):
    handle = await start()

    async def reject():
        await drive.until(handle, lambda s: s.pending_approval == "production")
        await handle.signal(ReleaseWorkflow.reject, {"stage": "production", "approver": "erin"})

    result = await result_with(handle, lambda: drive.approve(handle, "canary"), reject)
    assert result.outcome is Outcome.REJECTED and world.weights == [10, 0]


async def test_pause_holds_traffic_until_resume(drive: Drive, world: FakeWorld, start, time_skipping_env):
    handle = await start()
    await drive.approve(handle, "canary")
    await drive.until(handle, lambda s: s.canary_weight == 10)
    await handle.signal(ReleaseWorkflow.pause, {"actor": "frank", "reason": "checking a dashboard"})
    paused = await drive.until(handle, lambda s: s.paused)
    await time_skipping_env.sleep(3 * 3600)  # far past the canary duration
    held = await status(handle)
    assert paused.paused and held.phase is Phase.CANARY and world.weights == [10]

    await handle.signal(ReleaseWorkflow.resume)
    await drive.approve(handle, "production")
    assert (await handle.result()).outcome is Outcome.PROMOTED
    assert any("paused by frank" in entry.message for entry in held.timeline)


async def test_cancel_rolls_back_before_the_release_ends(drive: Drive, world: FakeWorld, start):
    handle = await start()
    await drive.approve(handle, "canary")
    await drive.approve(handle, "production")
    await drive.until(handle, lambda s: s.canary_weight == 50)
    await handle.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert world.weights == [10, 25, 50, 0]
    final = await status(handle)
    assert final.outcome is Outcome.ROLLED_BACK and final.reason == "release cancelled"


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        ({"version": "2.0.0"}, ["service: Field required"]),
        ({**REQUEST, "policy": {"steps": [25, 50]}}, ["policy.steps: must end at 100"]),
        ({**REQUEST, "policy": {"canary_weight": 0, "thresold": {}}}, ["policy.canary_weight", "policy.thresold"]),
        ({**REQUEST, "target": "mars"}, ["target:"]),
        ({**REQUEST, "target": "kubernetes", "policy": {"metrics_provider": "traefik"}}, ["'traefik' cannot read the kubernetes target"]),
        ({**REQUEST, "policy": {"baseline": {"metrics": {"p95_latency_ms": {}}}}}, ["policy.baseline needs raw samples, which the traefik provider does not give"]),
        ({**REQUEST, "env": {"DB_PASSWORD": "hunter2"}}, ["env: Value error, DB_PASSWORD looks like a secret"]),
        (["gallery", "2.0.0"], ["input: expected one JSON object, got list"]),
    ],
)
async def test_bad_input_fails_at_once_naming_each_field(world: FakeWorld, start, request_, fields):
    handle = await start(request_)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidReleaseRequest" and cause.non_retryable
    for field in fields:
        assert field.replace("Value error, ", "") in cause.message
    assert world.calls == []
    assert "hunter2" not in cause.message


async def test_no_traffic_on_the_canary_is_never_a_pass(drive: Drive, world: FakeWorld, start):
    world.canary_health = lambda weight: NO_TRAFFIC
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary"))
    assert result.outcome is Outcome.ROLLED_BACK
    assert "3 checks in a row without enough data" in result.reason
    assert world.weights == [10, 0]


async def test_unreadable_metrics_are_never_taken_as_healthy(drive: Drive, world: FakeWorld, start):
    world.metrics_down = True
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary"))
    assert result.outcome is Outcome.ROLLED_BACK and world.weights == [10, 0]
    timeline = [entry.message for entry in (await status(handle)).timeline]
    assert any("metrics unavailable" in message for message in timeline)


async def test_first_release_of_a_service_is_an_initial_install(drive: Drive, world: FakeWorld, start):
    world.stable = None
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "production"))
    assert result.outcome is Outcome.PROMOTED
    assert world.called("deploy_version") == [("staging", "2.0.0"), ("canary", "2.0.0")]
    assert len(world.called("promote_version")) == 1 and world.weights == []


async def test_approvals_can_be_waived_by_policy(world: FakeWorld, start):
    result = await (await start({**REQUEST, "policy": {"required_approvals": []}})).result()
    assert result.outcome is Outcome.PROMOTED and result.approvals == []


async def test_second_release_of_a_service_is_refused_while_one_runs(drive: Drive, world: FakeWorld, start):
    first = await start()
    await drive.until(first, lambda s: s.pending_approval == "canary")
    # Awaiting a result lets the test server skip time, which would time out the first
    # release's wait for approval; so the second release is followed by its status.
    second = await drive.until(await start({**REQUEST, "version": "2.0.1"}), lambda s: s.outcome is not None)
    assert second.outcome is Outcome.FAILED and "another release of gallery-" in second.reason and "is running" in second.reason
    assert ("staging", "2.0.1") not in world.called("deploy_version")
    await first.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "alice"})
    assert (await first.result()).outcome is Outcome.REJECTED


async def test_malformed_and_out_of_turn_signals_are_recorded_and_ignored(drive: Drive, world: FakeWorld, start):
    handle = await start()
    await drive.until(handle, lambda s: s.pending_approval == "canary")
    await handle.signal(ReleaseWorkflow.approve, {"stage": "production", "approver": "mallory"})
    await handle.signal(ReleaseWorkflow.approve, {"stage": "canary"})
    await handle.signal(ReleaseWorkflow.approve, "yes")
    await handle.signal("no_such_signal", {"x": 1})
    current = await drive.until(handle, lambda s: len(s.ignored_signals) == 4)
    assert current.pending_approval == "canary" and current.approvals == []
    assert "not pending" in current.ignored_signals[0] and "approver" in current.ignored_signals[1]
    assert "no such signal" in current.ignored_signals[3]
    await handle.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "alice"})
    assert (await handle.result()).outcome is Outcome.REJECTED


async def test_no_traffic_pauses_for_a_human_when_the_policy_says_so(drive: Drive, world: FakeWorld, start):
    world.canary_health = lambda weight: NO_TRAFFIC
    handle = await start({**REQUEST, "policy": {"on_inconclusive": "pause"}})
    await drive.approve(handle, "canary")
    paused = await drive.until(handle, lambda s: s.paused)
    assert paused.phase is Phase.CANARY and world.weights == [10]
    assert any("paused for a human decision" in entry.message for entry in paused.timeline)
    await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "nobody uses it yet", "actor": "gina"})
    assert (await handle.result()).outcome is Outcome.ROLLED_BACK and world.weights == [10, 0]


async def test_standard_rule_holds_the_step_and_moves_on_once_the_canary_recovers(drive: Drive, world: FakeWorld, start):
    checks_at_50 = 0

    def health(weight: int):
        nonlocal checks_at_50
        checks_at_50 += weight == 50
        return SLOW if weight == 50 and checks_at_50 <= 2 else HEALTHY

    world.canary_health = health
    policy = {"thresholds": {"p95_latency_ms": {"max": 500, "severity": "standard"}}, "standard_persist_checks": 3}
    handle = await start({**REQUEST, "policy": policy})
    result = await result_with(handle, lambda: drive.approve(handle, "canary"), lambda: drive.approve(handle, "production"))
    assert result.outcome is Outcome.PROMOTED and world.weights == [10, 25, 50, 75, 100]
    assert result.last_analysis is not None and result.last_analysis.decision.startswith("advance")


async def test_baseline_comparison_rolls_back_a_canary_worse_than_stable(drive: Drive, world: FakeWorld, start):
    """SciPy runs inside the workflow sandbox here, as in production."""
    latencies = [100.0 + i for i in range(20)]
    world.stable_health = HEALTHY.model_copy(update={"samples": {Metric.P95_LATENCY_MS: latencies}})
    world.canary_health = lambda weight: HEALTHY.model_copy(update={"samples": {Metric.P95_LATENCY_MS: [v * 3 for v in latencies]}})
    policy = {"metrics_provider": "prometheus", "baseline": {"metrics": {"p95_latency_ms": {"allowed_effect": 0.2, "critical": True}}}}
    handle = await start({**REQUEST, "policy": policy})
    result = await result_with(handle, lambda: drive.approve(handle, "canary"))
    assert result.outcome is Outcome.ROLLED_BACK and result.breach.metric is Metric.P95_LATENCY_MS
    assert "worse than stable" in result.reason and result.last_analysis.score == 0
