"""The safety paths hold whatever else is broken: payloads of any shape never fail a
workflow task, the kill switch is always honoured and does not wait for a traffic
change that hangs, a release that dies holding its lock is rolled back by the lock,
and a release continues as new with its lock, approvals and rollback intact.
On the time-skipping server; the world behind the activities is FakeWorld."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from pipeline.models import Outcome, Phase
from tests.helpers.fakes import FakeWorld
from tests.helpers.harness import REQUEST, TASK_QUEUE, Drive, status
from tests.helpers.real_stack import until
from workflows import ALL as WORKFLOWS
from workflows import lock as lock_module
from workflows.lock import lock_id
from workflows.release import ReleaseWorkflow
from workflows.release import continuation as release_module


async def workflow_task_failures(handle: WorkflowHandle) -> list[str]:
    history = await handle.fetch_history()
    failed = [event.workflow_task_failed_event_attributes for event in history.events if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    # UNHANDLED_COMMAND is the server asking for a fresh task because signals arrived
    # while the last one completed: a retry by design, not a failure of the workflow.
    return [f"{WorkflowTaskFailedCause.Name(failure.cause)}: {failure.failure.message}" for failure in failed if failure.cause != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND]


@pytest.mark.parametrize("name", ["kill_switch", "approve", "reject", "break_glass", "pause", "resume", "submit_approval"])
async def test_a_signal_of_any_shape_never_fails_a_workflow_task(drive: Drive, world: FakeWorld, start, name):
    handle = await start()
    await drive.until(handle, lambda s: s.pending_approval == "canary")
    for args in ([], [{"a": 1}, {"b": 2}], ["x" * 10_000], [None], [[1, 2]], [{"stage": 3, "approver": ["x"]}]):
        await handle.signal(name, args=args)
    await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "end of test", "actor": "ci"})
    result = await handle.result()

    assert await workflow_task_failures(handle) == []
    assert result.outcome in (Outcome.ROLLED_BACK, Outcome.REJECTED)


async def test_a_kill_switch_with_no_payload_still_rolls_the_canary_back(drive: Drive, world: FakeWorld, start):
    handle = await start({**REQUEST, "policy": {"required_approvals": []}})
    await drive.until(handle, lambda s: s.canary_weight == 10)
    await handle.signal("kill_switch")
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK and "kill switch pulled by unknown" in result.reason
    assert world.weights[-1] == 0
    timeline = [entry.message for entry in (await status(handle)).timeline]
    assert any("expected one payload, got 0; honoured all the same" in message for message in timeline)


async def test_a_kill_switch_with_a_huge_reason_and_no_actor_is_honoured(drive: Drive, world: FakeWorld, start):
    handle = await start({**REQUEST, "policy": {"required_approvals": []}})
    await drive.until(handle, lambda s: s.canary_weight == 10)
    await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "r" * 5_000})
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK and world.weights[-1] == 0
    assert len(result.reason) < 2_200


@pytest.mark.parametrize("args", [[], [dict(REQUEST), dict(REQUEST)]], ids=["no input", "two inputs"])
async def test_a_start_with_no_input_or_two_fails_at_once(time_skipping_env, world: FakeWorld, args):
    handle = await time_skipping_env.client.start_workflow(
        "ReleaseWorkflow", args=args, id=f"release-{uuid.uuid4()}", task_queue=TASK_QUEUE
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert f"expected one release request, got {len(args)} inputs" in cause.message
    assert await workflow_task_failures(handle) == []


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"thresholds": {"error_rate": {"max": "NaN"}}}, "policy.thresholds.error_rate.max"),
        ({"thresholds": {"p95_latency_ms": {"max": "Infinity"}}}, "policy.thresholds.p95_latency_ms.max"),
        ({"baseline": {"metrics": {"error_rate": {"allowed_effect": "NaN"}}}}, "policy.baseline.metrics.error_rate.allowed_effect"),
        ({"canary_weight": 100}, "policy.canary_weight"),
        ({"canary_weight": 25, "steps": [25, 100]}, "steps must start above canary_weight"),
        ({"canary_segments": ["beta`) || Host(`x"]}, "policy.canary_segments.0"),
        ({"test_suites": ["unit; rm -rf /"]}, "policy.test_suites.0"),
        ({"steps": list(range(1, 101))}, "policy.steps"),
    ],
)
async def test_unsafe_policies_are_refused_at_validation(world: FakeWorld, start, policy, field):
    handle = await start({**REQUEST, "policy": policy})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert field in failure.value.cause.message
    assert world.calls == []


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"LD_PRELOAD": "/tmp/evil.so"}, "LD_PRELOAD may not be set by a release"),
        ({"PYTHONPATH": "/tmp/evil"}, "PYTHONPATH may not be set by a release"),
        ({"NOTE": "x" * (1 << 20)}, "NOTE: value is 1048576 characters"),
        ({"NOTE": "a\x00b"}, "NOTE: value holds a control character"),
        ({f"V{i}": "v" for i in range(65)}, "65 variables, at most 64 allowed"),
    ],
)
async def test_unsafe_env_is_refused_at_once_not_after_retries(world: FakeWorld, start, env, problem):
    handle = await start({**REQUEST, "env": env})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert problem in failure.value.cause.message
    assert world.calls == []


async def test_an_oversized_request_is_refused_at_once(world: FakeWorld, start):
    handle = await start({**REQUEST, "description": "d" * 1_000, "policy": {"queries": {"error_rate": "q" * 4_096, "requests": "r" * 4_096}}, "env": {f"V{i}": "v" * 4_000 for i in range(20)}})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "bytes of JSON" in failure.value.cause.message
    assert world.calls == []


async def test_update_refusals_say_they_are_not_worth_retrying(drive: Drive, world: FakeWorld, start):
    handle = await start()
    await drive.until(handle, lambda s: s.pending_approval == "canary")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReleaseWorkflow.submit_approval, {"stage": "production", "approver": "bob"})
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.non_retryable
    with pytest.raises(WorkflowUpdateFailedError) as malformed:
        await handle.execute_update("submit_approval", args=[])
    assert malformed.value.cause.non_retryable and "expected one payload, got 0" in malformed.value.cause.message
    await handle.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "alice"})
    assert (await handle.result()).outcome is Outcome.REJECTED


async def test_the_kill_switch_update_answers_once_traffic_is_on_stable(drive: Drive, world: FakeWorld, start):
    handle = await start({**REQUEST, "policy": {"required_approvals": []}})
    await drive.until(handle, lambda s: s.canary_weight == 10)
    receipt = await handle.execute_update(ReleaseWorkflow.submit_kill_switch, {"reason": "checkout errors", "actor": "bob"})

    assert world.weights[-1] == 0 and "all traffic on stable" in receipt.message
    assert (await handle.result()).outcome is Outcome.ROLLED_BACK


async def test_the_kill_switch_does_not_wait_for_a_traffic_change_that_hangs(drive: Drive, world: FakeWorld, start):
    world.hang_at_weights = {25}  # the router never confirms the first production step
    handle = await start({**REQUEST, "policy": {"required_approvals": []}})
    await drive.until(handle, lambda s: s.phase == Phase.PROGRESSIVE_SHIFT)
    receipt = await handle.execute_update(ReleaseWorkflow.submit_kill_switch, {"reason": "router stuck", "actor": "bob"})
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK
    assert world.weights == [10, 0] and receipt.seconds < 5


async def test_the_kill_switch_does_not_wait_for_a_metrics_read_that_hangs(drive: Drive, world: FakeWorld, start):
    """A read runs first as a local activity, which holds its workflow task: the kill
    switch waits at most QUICK_READ_BOUND for it, then the read goes on as an ordinary
    activity, which the kill switch abandons at once."""
    handle = await start({**REQUEST, "policy": {"required_approvals": []}})
    await drive.until(handle, lambda s: s.canary_weight == 10)
    world.metrics_hang = True
    ordered = time.monotonic()
    await handle.execute_update(ReleaseWorkflow.submit_kill_switch, {"reason": "metrics down", "actor": "bob"})
    on_stable = time.monotonic() - ordered
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK and "kill switch pulled by bob" in result.reason
    assert world.weights[-1] == 0 and on_stable < 5, f"traffic on stable {on_stable:.1f}s after the order"


async def test_a_terminated_release_is_rolled_back_by_its_lock(dev_server: WorkflowEnvironment, monkeypatch):
    """On the real dev server (the time-skipping server cannot skip to the lock's next
    check once its holder is gone), with the lock checking every second."""
    monkeypatch.setattr(lock_module, "HOLDER_CHECK_SECONDS", 1)
    world, queue = FakeWorld(), f"guard-{uuid.uuid4().hex[:6]}"
    async with Worker(
        dev_server.client, task_queue=queue, workflows=WORKFLOWS, activities=world.activities(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        request = {**REQUEST, "policy": {"required_approvals": []}}
        handle = await dev_server.client.start_workflow(ReleaseWorkflow.run, request, id=f"release-{uuid.uuid4()}", task_queue=queue)
        async with asyncio.timeout(30):
            while world.weight != 10:
                await asyncio.sleep(0.05)
        await handle.terminate("operator ended it by hand")
        lock = dev_server.client.get_workflow_handle(lock_id(REQUEST["service"]))
        async with asyncio.timeout(30):
            while (await lock.describe()).status != WorkflowExecutionStatus.COMPLETED:
                await asyncio.sleep(0.1)

    assert world.weights == [10, 0]
    assert world.called("stop_version")[-2:] == ["canary", "staging"]


async def test_a_release_continues_as_new_with_its_lock_approvals_and_rollback(dev_server: WorkflowEnvironment, monkeypatch):
    """On the real dev server (the time-skipping server loses queries sent while a
    run continues as new), with continue-as-new lowered to 60 events so that a
    short release crosses it several times."""
    monkeypatch.setattr(release_module, "CONTINUE_AS_NEW_EVENTS", 60)
    world, queue, client = FakeWorld(), f"continue-{uuid.uuid4().hex[:6]}", dev_server.client
    service = f"gallery-{uuid.uuid4().hex[:6]}"
    policy = {"analysis_interval_seconds": 1, "canary_duration_seconds": 3, "steps": [25, 50, 100], "step_interval_seconds": 3}
    request = {**REQUEST, "service": service, "policy": policy}
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=world.activities(), workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(ReleaseWorkflow.run, request, id=f"release-{uuid.uuid4()}", task_queue=queue)
        await until(handle, lambda s: s.pending_approval == "canary")
        await handle.signal(ReleaseWorkflow.approve, {"stage": "canary", "approver": "alice"})
        await until(handle, lambda s: s.pending_approval == "production" and s.continued_runs >= 1)

        rival = await client.start_workflow(ReleaseWorkflow.run, request, id=f"release-{uuid.uuid4()}", task_queue=queue)
        assert (await rival.result()).outcome is Outcome.FAILED  # the lock is still held across runs
        receipt = await handle.execute_update(ReleaseWorkflow.submit_approval, {"stage": "production", "approver": "bob"})
        assert receipt.counted
        await until(handle, lambda s: s.canary_weight >= 50)
        await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "after continuing", "actor": "ci"})
        result = await handle.result()
        final = await status(handle)
        lock = await client.get_workflow_handle(lock_id(service)).describe()

    assert result.outcome is Outcome.ROLLED_BACK and world.weights[-1] == 0
    assert [(a.stage, a.approver) for a in result.approvals] == [("canary", "alice"), ("production", "bob")]
    assert final.continued_runs >= 2 and await workflow_task_failures(handle) == []
    assert lock.status == WorkflowExecutionStatus.COMPLETED
    assert world.weights.count(10) == 1 and world.weights.count(25) == 1  # no step applied twice across runs
