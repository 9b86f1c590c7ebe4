"""Release trains: dependency order and parallelism, whole-train rollback in reverse
order, `stop` mode, the train's kill switch, per-train approvals with the two-person
rule, and bad trains refused before anything starts. The members are real
ReleaseWorkflows; the world behind their activities is TrainWorld
(tests/helpers/train_world.py).

On the real dev server with policies of seconds, not the time-skipping server: with a
train's children and their locks' children, its skipping stalls now and then (seen in
about half of the runs of a three-member train) and runs the timers in real time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.models import Outcome, ReleaseStatus, TrainResult, TrainStatus
from tests.helpers.harness import TASK_QUEUE
from tests.helpers.train_world import TrainWorld
from workflows import ALL as WORKFLOWS
from workflows.train import ReleaseTrainWorkflow

POLICY = {
    "required_approvals": [],
    "canary_duration_seconds": 2,
    "analysis_interval_seconds": 1,
    "steps": [50, 100],
    "step_interval_seconds": 1,
    "bake_seconds": 1,
    "test_suites": ["unit"],
}


def member(service: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    return {"service": service, "version": "2.0.0", "policy": POLICY, "depends_on": list(depends_on), **extra}


@pytest.fixture
async def world(dev_server: WorkflowEnvironment) -> AsyncIterator[TrainWorld]:
    world = TrainWorld()
    async with Worker(dev_server.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()):
        yield world


@pytest.fixture
def depart(dev_server: WorkflowEnvironment) -> Callable[..., Any]:
    async def depart(releases: list[dict[str, Any]], **policy: Any) -> WorkflowHandle:
        request = {"train": "spring-2027", "target": "local", "releases": releases, "policy": policy}
        return await dev_server.client.start_workflow(
            ReleaseTrainWorkflow.run, request, id=f"train-{uuid.uuid4().hex[:8]}", task_queue=TASK_QUEUE,
            result_type=TrainResult,
        )

    return depart


async def until(handle: WorkflowHandle, condition: Callable[[TrainStatus], bool]) -> TrainStatus:
    """Poll the train's status until `condition` holds; bounded."""
    async with asyncio.timeout(30):
        while not condition(status := await handle.query(ReleaseTrainWorkflow.status)):
            await asyncio.sleep(0.1)
    return status


def member_states(result: TrainResult) -> dict[str, str]:
    return {m.service: m.state for m in result.members}


async def test_members_depart_in_dependency_order_side_by_side_and_previous_versions_retire_at_the_end(world, depart):
    handle = await depart([member("gallery", "shoot", "upload"), member("shoot"), member("upload")], max_parallel=2)
    result = await handle.result()

    assert result.outcome is Outcome.PROMOTED, result.reason
    assert member_states(result) == {"gallery": "promoted", "shoot": "promoted", "upload": "promoted"}
    events = world.events
    gallery_deploy = events.index(("deploy", "gallery", "2.0.0"))
    assert events.index(("promote", "shoot", "2.0.0")) < gallery_deploy
    assert events.index(("promote", "upload", "2.0.0")) < gallery_deploy
    assert events.index(("deploy", "upload", "2.0.0")) < events.index(("promote", "shoot", "2.0.0")), "independent members run side by side"
    retired = [e for e in events if e[0] == "retire"]
    assert sorted(retired) == [("retire", s, "1.0.0") for s in ("gallery", "shoot", "upload")]
    assert events.index(retired[0]) > events.index(("promote", "gallery", "2.0.0")), "previous versions stay warm until the train ends"


async def test_max_parallel_one_runs_members_one_at_a_time(world, depart):
    result = await (await depart([member("shoot"), member("upload")], max_parallel=1)).result()
    assert result.outcome is Outcome.PROMOTED
    assert world.events.index(("promote", "shoot", "2.0.0")) < world.events.index(("deploy", "upload", "2.0.0"))


async def test_a_failing_member_rolls_back_reverts_promoted_members_in_reverse_order_and_starts_no_more(world, depart):
    world.failing_services = {"gallery"}
    releases = [member("shoot"), member("upload", "shoot"), member("gallery", "upload"), member("prints", "gallery")]
    result = await (await depart(releases, max_parallel=2)).result()

    assert result.outcome is Outcome.ROLLED_BACK and result.culprit == "gallery", result
    assert member_states(result) == {"shoot": "reverted", "upload": "reverted", "gallery": "stopped", "prints": "not_started"}
    reverts = [e for e in world.events if e[0] == "revert"]
    assert reverts == [("revert", "upload", "1.0.0"), ("revert", "shoot", "1.0.0")], "dependents first"
    assert world.stables == {"shoot": "1.0.0", "upload": "1.0.0"}, "gallery never got promoted; the others are back"
    assert ("deploy", "prints", "2.0.0") not in world.events


async def test_stop_mode_keeps_promoted_members_and_starts_no_more(world, depart):
    world.failing_services = {"gallery"}
    releases = [member("shoot"), member("gallery", "shoot"), member("prints", "gallery")]
    result = await (await depart(releases, on_failure="stop")).result()

    assert result.outcome is Outcome.ROLLED_BACK and result.culprit == "gallery"
    assert member_states(result) == {"shoot": "promoted", "gallery": "stopped", "prints": "not_started"}
    assert world.stables["shoot"] == "2.0.0" and ("retire", "shoot", "1.0.0") in world.events


async def test_the_trains_kill_switch_rolls_back_the_running_member_and_reverts_the_promoted_one(
    world, depart
):
    handle = await depart([member("shoot"), member("gallery", "shoot")])
    await until(handle, lambda s: any(m.service == "gallery" and m.canary_weight > 0 for m in s.members))
    await handle.signal(ReleaseTrainWorkflow.kill_switch, {"actor": "olivia", "reason": "checkout broken"})
    result = await handle.result()

    assert result.outcome is Outcome.ROLLED_BACK and "kill switch pulled by olivia" in result.reason
    assert member_states(result) == {"shoot": "reverted", "gallery": "stopped"}
    gallery = next(m for m in result.members if m.service == "gallery")
    assert gallery.outcome is Outcome.ROLLED_BACK and "train" in gallery.reason
    assert world.stables["shoot"] == "1.0.0" and world.weight == 0


async def test_a_malformed_kill_switch_still_stops_the_train(world, depart):
    handle = await depart([member("shoot"), member("gallery", "shoot")])
    await until(handle, lambda s: any(m.state == "running" for m in s.members))
    await handle.signal("kill_switch", "not an object")
    result = await handle.result()
    assert result.outcome is Outcome.ROLLED_BACK and result.culprit == "train"


async def test_per_train_approvals_cover_every_member_under_the_two_person_rule(world, depart, dev_server, tmp_path,
                                                                               monkeypatch):
    gates = {"defaults": {"approvals": {"production": {"users": ["bob", "carol"], "min_approvals": 2}}}}
    (tmp_path / "gates.json").write_text(json.dumps(gates))
    monkeypatch.setenv("PIPELINE_GATES_FILE", str(tmp_path / "gates.json"))
    gated = {**POLICY, "required_approvals": ["production"]}
    handle = await depart([member("shoot", policy=gated), member("upload", policy=gated)], approvals="per_train")

    await until(handle, lambda s: all(m.pending_approval == "production" for m in s.members))
    await handle.signal(ReleaseTrainWorkflow.approve, {"stage": "production", "approver": "bob"})
    await handle.signal(ReleaseTrainWorkflow.approve, {"stage": "production", "approver": "bob"})
    status = await until(handle, lambda s: s.approvals.get("production") == ["bob"])
    assert all(m.state == "running" and m.pending_approval == "production" for m in status.members), "one person is not two"
    await handle.signal(ReleaseTrainWorkflow.approve, {"stage": "production", "approver": "carol"})
    result = await handle.result()

    assert result.outcome is Outcome.PROMOTED, result.reason
    client = dev_server.client
    for m in result.members:
        approvals = (await client.get_workflow_handle(m.workflow_id).query("status", result_type=ReleaseStatus)).approvals
        assert sorted(a.approver for a in approvals) == ["bob", "carol"]


@pytest.mark.parametrize(
    ("releases", "named"),
    [
        ([member("shoot", "gallery"), member("gallery", "shoot")], "depends_on has a cycle: shoot -> gallery -> shoot"),
        ([member("gallery", "shoot")], "gallery depends on 'shoot', which is not in the train"),
        ([member("shoot"), member("shoot")], "shoot more than once"),
        ([], "releases: List should have at least 1 item"),
        ([member("shoot"), member("gallery", policy={"canary_weight": "lots"})], "releases[1] (gallery): policy.canary_weight"),
        ([member("shoot", migration={"expand": "0002", "contract": "0004"})], "releases[0] (shoot): migration.contract"),
    ],
)
async def test_a_bad_train_fails_at_once_naming_the_problem_and_starts_nothing(world, depart, releases, named):
    handle = await depart(releases)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert named in str(failure.value.cause)
    assert world.calls == [] and world.events == []


async def test_a_worker_lost_mid_train_is_replaced_and_each_members_steps_happen_once(dev_server, depart):
    """The worker goes away while one layer of the train is promoted and the next is
    still to come; a new worker (a fresh workflow cache: it replays every history)
    finishes the train, and no member's deploy, promotion or retirement happens twice."""
    world = TrainWorld()
    first = Worker(dev_server.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities())
    lost = asyncio.create_task(first.run())
    handle = await depart([member("shoot"), member("upload"), member("gallery", "shoot", "upload")])
    status = await until(handle, lambda s: any(m.state == "promoted" for m in s.members))
    lost.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lost
    assert status.outcome is None and status.members[2].state in ("waiting", "running"), "lost mid-train"

    async with Worker(dev_server.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()):
        result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome is Outcome.PROMOTED, result.reason
    for step in ("deploy", "promote", "retire"):
        done = [event for event in world.events if event[0] == step]
        assert sorted(done) == sorted(set(done)) and len(done) == 3, (step, world.events)
