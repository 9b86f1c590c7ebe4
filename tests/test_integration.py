"""Releases on real parts: the Temporal dev server, a worker process, Traefik and
sample-service processes, with real HTTP load through the router. Nothing is faked.

The releases build on each other (one service, versions 1 to 4), as a platform
team's would, so the tests of this module run in order on one stack."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, installed_binary, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import Outcome
from tests.helpers.local import local_environment
from tests.helpers.real_stack import FAST_POLICY, SERVICE, approve_all, served_by, start_release, traffic_log, until
from workflows.release import ReleaseWorkflow

pytestmark = pytest.mark.integration

@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    async with local_stack(local_environment(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


async def start(stack: Stack, version: str, **overrides: Any) -> WorkflowHandle:
    return await start_release(stack, version, {**FAST_POLICY, **overrides.pop("policy", {})}, **overrides)


async def test_first_release_installs_the_service(stack: Stack, load: LoadGenerator):
    result = await approve_all(await start(stack, "1.0.0"))
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert set(await served_by(load, "1.0.0")) == {"1.0.0"}


async def test_good_release_moves_traffic_step_by_step_and_is_promoted(stack: Stack, load: LoadGenerator):
    log_before = len(traffic_log(stack))
    handle = await start(stack, "2.0.0", policy={"canary_duration_seconds": 12})
    await until(handle, lambda s: s.pending_approval == "canary")
    await handle.signal(ReleaseWorkflow.approve, {"stage": "canary", "approver": "alice"})
    await until(handle, lambda s: s.canary_weight == 20)
    segment_since = time.monotonic()
    during_canary = await served_by(load, "2.0.0", count=200)
    result = await approve_all(handle, "bob")

    assert result.outcome is Outcome.PROMOTED, result.reason
    canary_share = during_canary.get("2.0.0", 0) / sum(during_canary.values())
    assert 0.08 < canary_share < 0.4, during_canary  # 20% of ordinary traffic plus all beta photographers
    assert set(await served_by(load, "2.0.0")) == {"2.0.0"}
    assert set(load.served_since(segment_since, segment=True)) <= {"2.0.0"}
    weights = [entry["canary_weight"] for entry in traffic_log(stack)[log_before:]]
    assert weights[:3] == [20, 50, 100]


async def test_canary_with_injected_errors_rolls_back_on_its_own(stack: Stack, load: LoadGenerator):
    # Its staging suites are only unit tests, which cannot see the fault: production traffic must.
    handle = await start(stack, "3.0.0", env={"GALLERY_ERROR_RATE": "0.5"}, policy={"test_suites": ["unit"]})
    result = await approve_all(handle)

    assert result.outcome is Outcome.ROLLED_BACK
    assert result.breach is not None and result.breach.metric == "error_rate" and result.breach.value > 0.2
    assert set(await served_by(load, "2.0.0")) == {"2.0.0"}
    assert (await handle.query(ReleaseWorkflow.status)).canary_weight == 0


async def test_worker_killed_during_the_shift_finishes_with_each_step_applied_once(stack: Stack, load: LoadGenerator):
    log_before = len(traffic_log(stack))
    handle = await start(stack, "4.0.0", policy={"steps": [25, 50, 75, 100], "step_interval_seconds": 3})
    await until(handle, lambda s: s.pending_approval == "canary")
    await handle.signal(ReleaseWorkflow.approve, {"stage": "canary", "approver": "alice"})
    await until(handle, lambda s: s.pending_approval == "production")
    await handle.signal(ReleaseWorkflow.approve, {"stage": "production", "approver": "bob"})
    await until(handle, lambda s: s.canary_weight == 50)
    await stack.worker.kill()
    await stack.worker.start()

    result = await asyncio.wait_for(handle.result(), 120)
    assert result.outcome is Outcome.PROMOTED, result.reason
    weights = [entry["canary_weight"] for entry in traffic_log(stack)[log_before:]]
    assert weights[:5] == [20, 25, 50, 75, 100]
    assert weights.count(50) == 1 and weights.count(75) == 1
    assert set(await served_by(load, "4.0.0")) == {"4.0.0"}


async def test_operators_find_releases_by_search_attributes(stack: Stack):
    query = f'ReleaseService="{SERVICE}" AND ReleaseOutcome="rolled_back"'
    found = [execution.id async for execution in stack.client.list_workflows(query)]
    assert any("3.0.0" in workflow_id for workflow_id in found) and not any("2.0.0" in workflow_id for workflow_id in found)


def test_temporal_cli_start_with_bad_input_fails_naming_the_field(stack: Stack):
    workflow_id = f"bad-{uuid.uuid4().hex[:6]}"
    temporal = installed_binary("temporal")
    address = ["--address", stack.temporal_address]
    started = subprocess.run(
        [temporal, "workflow", "start", *address, "--type", "ReleaseWorkflow", "--task-queue", stack.task_queue,
         "--workflow-id", workflow_id, "--input", json.dumps({"service": "Gallery!", "version": "1.0"})],
        capture_output=True, text=True, timeout=30,
    )
    assert started.returncode == 0, started.stderr
    result = subprocess.run(
        [temporal, "workflow", "result", *address, "--workflow-id", workflow_id],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "service: String should match pattern" in result.stdout + result.stderr


async def test_a_queued_release_waits_for_the_running_one_then_proceeds(stack: Stack, load: LoadGenerator):
    first = await start(stack, "5.0.0")
    await until(first, lambda s: s.pending_approval == "canary")
    second = await start(stack, "5.0.1", policy={"concurrency": "queue", "required_approvals": []})
    await until(second, lambda s: s.phase == "waiting_for_lock")
    await first.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "alice", "comment": "superseded"})

    assert (await asyncio.wait_for(first.result(), 60)).outcome is Outcome.REJECTED
    result = await asyncio.wait_for(second.result(), 120)
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert set(await served_by(load, "5.0.1")) == {"5.0.1"}
