"""FeatureRolloutWorkflow on the time-skipping server: five-minute holds take seconds.

The flag activities are the real ones, on a real flag store (the local flagd file in a
temporary state directory); the gates activity is the real one, reading a gates file
the test writes. Only `observe_metrics` is faked (FlagMetrics below): the per-variant
metrics of real services are the local-stack tests' subject."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import apply_flag_stage, kill_flag, load_gates, read_flag_state
from pipeline.flags.changes import apply_stage, kill, read_flag
from pipeline.flags.local_file import LocalFileStore, flags_file
from pipeline.models import Observation, ObserveRequest, Outcome, VersionMetrics
from pipeline.models.flag_rollout import FeatureRolloutStatus
from pipeline.models.flags import (
    FlagKillRequest,
    FlagOutcome,
    FlagRef,
    FlagSetting,
    FlagStageRequest,
    Serving,
)
from tests.helpers.fakes import FAILING, HEALTHY, NO_TRAFFIC, FakeWorld
from workflows import ALL as WORKFLOWS
from workflows.flags import FeatureRolloutWorkflow
from workflows.release import ReleaseWorkflow

TASK_QUEUE = "flags-test"
FLAG = "new-gallery-layout"
REQUEST = {
    "flag": FLAG, "service": "gallery", "variants": {"on": True, "off": False},
    "steps": [{"percentage": 25}, {"percentage": 50}, {"percentage": 100}],
}


@dataclass
class FlagMetrics:
    """Per-variant metrics by the flag's current percentage, read from the real store."""

    store: LocalFileStore
    on_health: Callable[[int], VersionMetrics] = lambda percentage: HEALTHY
    requests: list[ObserveRequest] = field(default_factory=list)

    @activity.defn(name="observe_metrics")
    async def observe_metrics(self, request: ObserveRequest) -> Observation:
        self.requests.append(request)
        state = await read_flag(self.store, FLAG)
        return Observation(window_seconds=60, canary=self.on_health(state.setting.percentage), stable=HEALTHY,
                           cursor={"n": len(self.requests)})


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> LocalFileStore:
    monkeypatch.setenv("PIPELINE_LOCAL_STATE_DIR", str(tmp_path))
    return LocalFileStore(flags_file(tmp_path, "production"), "production")


@pytest.fixture
async def metrics(time_skipping_env: WorkflowEnvironment, store: LocalFileStore) -> AsyncIterator[FlagMetrics]:
    fake = FlagMetrics(store)
    activities = [read_flag_state, apply_flag_stage, kill_flag, load_gates, fake.observe_metrics]
    async with Worker(time_skipping_env.client, task_queue=TASK_QUEUE, workflows=[FeatureRolloutWorkflow],
                      activities=activities):
        yield fake


@pytest.fixture
def start(time_skipping_env: WorkflowEnvironment, metrics: FlagMetrics) -> Callable[..., Any]:
    async def start(request: Any = None, **changes: Any) -> WorkflowHandle:
        return await time_skipping_env.client.start_workflow(
            FeatureRolloutWorkflow.run, {**REQUEST, **changes} if request is None else request,
            id=f"rollout-{uuid.uuid4().hex[:8]}", task_queue=TASK_QUEUE)
    return start


async def until(env: WorkflowEnvironment, handle: WorkflowHandle, condition: Callable[[FeatureRolloutStatus], bool],
                within: float = 60) -> FeatureRolloutStatus:
    """Poll the status query until `condition` holds, letting workflow time pass between polls."""
    current = None
    try:
        async with asyncio.timeout(within):
            for polls in range(10_000):
                current = await handle.query(FeatureRolloutWorkflow.status)
                if condition(current):
                    return current
                await (asyncio.sleep(0.05) if polls < 10 else env.sleep(20))
    except TimeoutError:
        pass
    pytest.fail(f"condition not met within {within}s; last status: {current}")


async def approve(env: WorkflowEnvironment, handle: WorkflowHandle, stage: str, approver: str = "alice") -> None:
    await until(env, handle, lambda s: s.pending_approval == stage)
    await handle.signal(FeatureRolloutWorkflow.approve, {"stage": stage, "approver": approver})


async def approved(env, handle) -> None:
    await approve(env, handle, "canary")
    await approve(env, handle, "production", "bob")


async def test_a_flag_goes_from_dark_to_everyone_through_segments_and_steps(time_skipping_env, start, store, metrics):
    handle = await start()
    await approved(time_skipping_env, handle)
    result = await handle.result()
    assert result.outcome is FlagOutcome.ENABLED and result.setting.percentage == 100
    state = await read_flag(store, FLAG)
    assert state.serving is Serving.ON and state.default_variant == "on"
    history = [(c.action, c.after.segments, c.after.percentage) for c in await store.history(FLAG)]
    segments = ["beta-photographer", "internal-team"]
    assert history == [("define", [], 0), ("stage", segments, 0), ("stage", segments, 25),
                       ("stage", segments, 50), ("stage", segments, 100)]
    assert all(c.rollout_id == handle.id for c in await store.history(FLAG))
    assert result.analyses >= 4
    flag_request = metrics.requests[-1].flag
    assert (flag_request.flag, flag_request.on_variant, flag_request.off_variant) == (FLAG, "on", "off")


async def test_each_step_holds_five_minutes_by_default(time_skipping_env, start, metrics):
    handle = await start()
    began = await time_skipping_env.get_current_time()
    await approved(time_skipping_env, handle)
    await handle.result()
    assert (await time_skipping_env.get_current_time() - began).total_seconds() >= 4 * 300


async def test_a_breaching_on_variant_is_turned_off_at_the_first_analysis_that_sees_it(time_skipping_env, start, store,
                                                                                       metrics):
    metrics.on_health = lambda percentage: FAILING if percentage >= 50 else HEALTHY
    handle = await start()
    await approved(time_skipping_env, handle)
    result = await handle.result()
    assert result.outcome is FlagOutcome.ROLLED_BACK and "error_rate" in result.reason and "50%" in result.reason
    state = await read_flag(store, FLAG)
    assert state.serving is Serving.OFF and state.killed
    assert [c.action for c in await store.history(FLAG)][-1] == "kill"


async def test_no_data_is_inconclusive_and_rolls_back_after_the_allowed_streak(time_skipping_env, start, store, metrics):
    metrics.on_health = lambda percentage: NO_TRAFFIC
    handle = await start(required_approvals=[])
    result = await handle.result()
    assert result.outcome is FlagOutcome.ROLLED_BACK and "inconclusive" in result.reason
    assert (await read_flag(store, FLAG)).serving is Serving.OFF


async def test_the_kill_switch_turns_the_flag_off_at_once(time_skipping_env, start, store, metrics):
    handle = await start()
    await approved(time_skipping_env, handle)
    await until(time_skipping_env, handle, lambda s: s.setting.percentage == 25)
    await handle.signal(FeatureRolloutWorkflow.kill_switch, {"reason": "support tickets", "actor": "carol"})
    result = await handle.result()
    assert result.outcome is FlagOutcome.ROLLED_BACK and result.reason == "kill switch pulled by carol: support tickets"
    last = (await store.history(FLAG))[-1]
    assert (last.action, last.actor, last.serving) == ("kill", "carol", Serving.OFF)


async def test_a_flag_turned_off_out_of_band_ends_the_rollout_rolled_back(time_skipping_env, start, store, metrics):
    handle = await start()
    await approved(time_skipping_env, handle)
    await until(time_skipping_env, handle, lambda s: s.setting.percentage == 25)
    await kill(store, FlagKillRequest(ref=FlagRef(flag=FLAG), actor="ops", reason="pager"), "2026-11-28T04:00:00+00:00")
    result = await handle.result()
    assert result.outcome is FlagOutcome.ROLLED_BACK and "turned off by ops: pager" in result.reason
    assert (await read_flag(store, FLAG)).setting == FlagSetting()
    assert [c.action for c in await store.history(FLAG)].count("kill") == 1


async def test_a_rollout_started_after_a_kill_may_turn_the_flag_on_again(time_skipping_env, start, store, metrics):
    await apply_stage(store, FlagStageRequest(ref=FlagRef(flag=FLAG), variants={"on": True, "off": False},
                                              setting=FlagSetting(percentage=10), actor="x", rollout_id="old"), "t")
    await kill(store, FlagKillRequest(ref=FlagRef(flag=FLAG), actor="ops", reason="pager"), "t")
    result = await (await start(required_approvals=[], variants=None)).result()
    assert result.outcome is FlagOutcome.ENABLED


async def test_approvals_follow_the_gates_file(time_skipping_env, start, tmp_path, monkeypatch, metrics):
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"defaults": {"approvals": {"production": {"users": ["bob"]}}}}))
    monkeypatch.setenv("PIPELINE_GATES_FILE", str(gates))
    handle = await start(required_approvals=[])
    await until(time_skipping_env, handle, lambda s: s.pending_approval == "production")
    await handle.signal(FeatureRolloutWorkflow.approve, {"stage": "production", "approver": "mallory"})
    status = await until(time_skipping_env, handle, lambda s: s.ignored_signals)
    assert "mallory may not approve production" in status.ignored_signals[0]
    await handle.signal(FeatureRolloutWorkflow.approve, {"stage": "production", "approver": "bob"})
    assert (await handle.result()).outcome is FlagOutcome.ENABLED


async def test_an_approval_not_given_in_time_expires_with_the_segments_turned_off(time_skipping_env, start, store,
                                                                                     metrics):
    handle = await start(approval_timeout_seconds=3600)
    await approve(time_skipping_env, handle, "canary")
    result = await handle.result()
    assert result.outcome is FlagOutcome.EXPIRED and "production approval not given" in result.reason
    assert (await read_flag(store, FLAG)).serving is Serving.OFF


async def test_a_rejection_stops_the_rollout_and_the_flag_stays_dark(time_skipping_env, start, store, metrics):
    handle = await start()
    await until(time_skipping_env, handle, lambda s: s.pending_approval == "canary")
    await handle.signal(FeatureRolloutWorkflow.reject, {"approver": "dave", "comment": "not this week"})
    result = await handle.result()
    assert result.outcome is FlagOutcome.REJECTED and result.reason == "rejected at canary_approval by dave: not this week"
    state = await read_flag(store, FLAG)
    assert state.serving is Serving.OFF and not state.killed  # never shown to anyone: left dark, not killed


async def test_malformed_signals_are_recorded_and_ignored(time_skipping_env, start, metrics):
    handle = await start()
    await until(time_skipping_env, handle, lambda s: s.pending_approval == "canary")
    await handle.signal(FeatureRolloutWorkflow.approve, {"stage": "canary"})
    await handle.signal("approve", "yes please")
    await handle.signal("promote_now", {})
    status = await until(time_skipping_env, handle, lambda s: len(s.ignored_signals) == 3)
    assert "approver: Field required" in status.ignored_signals[0]
    assert "no such signal" in status.ignored_signals[2]
    await approved(time_skipping_env, handle)
    assert (await handle.result()).outcome is FlagOutcome.ENABLED


@pytest.mark.parametrize("change, field", [
    ({"steps": [{"percentage": 50}, {"percentage": 25}, {"percentage": 100}]}, "steps: Value error, percentages must strictly rise"),
    ({"steps": [{"percentage": 120}]}, "steps.0.percentage"),
    ({"on_variant": "blue"}, "on_variant: 'blue' is not one of the variants"),
    ({"flag": "Bad Name!"}, "flag: String should match pattern"),
])
async def test_malformed_input_fails_at_once_naming_the_field(start, store, change, field):
    handle = await start(**change)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert field.replace("Value error, ", "") in str(failure.value.cause)
    assert not store.path.exists()


async def test_an_unknown_flag_without_variants_fails_naming_it(start, store):
    result = await (await start(variants=None)).result()
    assert result.outcome is FlagOutcome.FAILED and "flag: 'new-gallery-layout' is not defined" in result.reason
    assert not store.path.exists()


# --- flags shipped by a release (workflows/release/flags.py) --------------------------------


@pytest.fixture
async def release_world(time_skipping_env: WorkflowEnvironment, store: LocalFileStore) -> AsyncIterator[FakeWorld]:
    """A release's world (FakeWorld) with the real flag activities, kill_flag's calls recorded in order."""
    world = FakeWorld()

    @activity.defn(name="kill_flag")
    async def recorded_kill_flag(request: FlagKillRequest):
        world.calls.append(("kill_flag", request.ref.flag))
        return await kill_flag(request)

    async with Worker(time_skipping_env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS,
                      activities=[*world.activities(), read_flag_state, apply_flag_stage, recorded_kill_flag]):
        yield world


async def start_release(env: WorkflowEnvironment, **changes: Any) -> WorkflowHandle:
    request = {"service": f"gallery-{uuid.uuid4().hex[:6]}", "version": "2.0.0", "target": "local",
               "policy": {"required_approvals": [], "bake_seconds": 0},
               "flags": [{"flag": FLAG, "variants": {"on": True, "off": False}, "required_approvals": [], "segments": [],
                          "steps": [{"percentage": 50, "hold_seconds": 0}, {"percentage": 100, "hold_seconds": 0}]}],
               **changes}
    return await env.client.start_workflow(ReleaseWorkflow.run, request, id=f"release-{uuid.uuid4().hex[:8]}",
                                           task_queue=TASK_QUEUE)


async def test_a_release_starts_its_flags_rollout_after_promotion(time_skipping_env, store, release_world):
    handle = await start_release(time_skipping_env)
    assert (await handle.result()).outcome is Outcome.PROMOTED
    rollout = time_skipping_env.client.get_workflow_handle(f"{handle.id}-flag-{FLAG}")
    # polled: the test server's long poll for a result ends without one for a workflow its client did not start;
    # the child holds no step (no timers), since the test server may not skip time for a child it did not start
    final = await until(time_skipping_env, rollout, lambda s: s.outcome is not None, within=60)
    assert final.outcome is FlagOutcome.ENABLED
    changes = await store.history(FLAG)
    assert changes[0].action == "define" and changes[0].after == FlagSetting()  # dark first
    assert {change.release_id for change in changes} == {handle.id}


async def test_a_release_rollback_turns_its_flags_off_before_moving_traffic(time_skipping_env, store, release_world):
    await apply_stage(store, FlagStageRequest(ref=FlagRef(flag=FLAG), variants={"on": True, "off": False},
                                              setting=FlagSetting(percentage=50), actor="x", rollout_id="old"), "t")
    release_world.canary_health = lambda weight: FAILING
    handle = await start_release(time_skipping_env)
    result = await handle.result()
    assert result.outcome is Outcome.ROLLED_BACK
    order = [name for name, _ in release_world.calls if name in ("kill_flag", "set_traffic")]
    assert order == ["set_traffic", "kill_flag", "set_traffic"]  # canary on, flags off, traffic back
    last = (await store.history(FLAG))[-1]
    assert (last.action, last.actor, last.release_id) == ("kill", f"release {handle.id}", handle.id)
    assert (await read_flag(store, FLAG)).serving is Serving.OFF


async def test_a_release_names_a_bad_shipped_flag_and_changes_nothing(time_skipping_env, store, release_world):
    handle = await start_release(time_skipping_env, flags=[{"flag": FLAG, "steps": [{"percentage": 101}]}])
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "flags[0].steps.0.percentage" in str(failure.value.cause)
    assert not store.path.exists() and release_world.calls == []
