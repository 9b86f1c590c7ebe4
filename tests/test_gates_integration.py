"""Release gates on real parts: the Temporal dev server, a worker process reading a
gates file, Traefik and sample-service processes. The platform's live activity is
the stable gallery's own /platform/activity (raised through the router, as the demo
does); webhooks go to a real HTTP receiver on loopback that records them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, installed_binary, local_stack, set_live_activity
from pipeline.local.loadgen import LoadGenerator
from pipeline.local_activities import scheduled_activities
from pipeline.models import Outcome, ReleaseResult
from tests.helpers.http_double import PlatformDouble
from tests.helpers.local import local_environment
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, start_release, until
from workflows.release import ReleaseWorkflow

pytestmark = pytest.mark.integration

POLICY = {**QUICK_POLICY, "live_activity_recheck_seconds": 1}


@pytest.fixture(scope="module")
def receiver() -> Iterator[PlatformDouble]:
    with PlatformDouble() as double:
        yield double


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory, receiver: PlatformDouble) -> AsyncIterator[Stack]:
    root = tmp_path_factory.mktemp("gates")
    gates_file = root / "gates.json"
    gates_file.write_text(json.dumps({
        "defaults": {
            "approvals": {"production": {"users": ["alice", "bob"], "min_approvals": 2}},
            "live_activity": {"url": "{stable}/platform/activity"},
            "webhooks": [
                {"name": "team", "format": "json", "url_env": "TEAM_HOOK_URL"},
                {"name": "chat", "format": "slack", "url_env": "CHAT_HOOK_URL", "events": ["finished"]},
            ],
        }
    }))
    local = local_environment(root / "stack")
    worker_env = {
        "PIPELINE_GATES_FILE": str(gates_file),
        "TEAM_HOOK_URL": receiver.hook_url("team"),
        "CHAT_HOOK_URL": receiver.hook_url("chat"),
    }
    async with local_stack(local, task_queue="gates", worker_env=worker_env) as stack:
        yield stack


async def start(stack: Stack, version: str) -> WorkflowHandle:
    return await start_release(stack, version, POLICY)


async def approve_production(stack: Stack, handle: WorkflowHandle) -> ReleaseResult:
    """Two approvers, the first through the plain `temporal` CLI (the public contract),
    after a refused one."""
    await until(handle, lambda s: s.pending_approval == "production")
    refused = await temporal_update(stack, handle, {"stage": "production", "approver": "mallory"})
    assert refused.returncode != 0 and "mallory may not approve production; allowed: alice, bob" in refused.stdout + refused.stderr
    first = await temporal_update(stack, handle, {"stage": "production", "approver": "alice"})
    assert first.returncode == 0 and "production: 1 of 2 approvals" in first.stdout, first.stdout + first.stderr
    receipt = await handle.execute_update(ReleaseWorkflow.submit_approval, {"stage": "production", "approver": "bob"})
    assert receipt.counted and receipt.approvals == 2
    return await asyncio.wait_for(handle.result(), 90)


async def temporal_update(stack: Stack, handle: WorkflowHandle, approval: dict[str, str]) -> subprocess.CompletedProcess:
    command = [
        installed_binary("temporal"), "workflow", "update", "execute", "--address", stack.temporal_address,
        "--workflow-id", handle.id, "--name", "submit_approval", "--input", json.dumps(approval),
    ]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=30)


async def checked_live_activity(handle: WorkflowHandle, times: int, within: float = 30) -> None:
    """Wait until the release has read the live activity `times` times (from its history)."""
    deadline = time.monotonic() + within
    while True:
        events = (await handle.fetch_history()).events
        checks = [name for name, _ in scheduled_activities(events)].count("check_live_activity")
        if checks >= times:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"live activity read {checks} times within {within}s, expected {times}")
        await asyncio.sleep(0.2)


async def test_first_release_needs_two_approvers(stack: Stack, load: LoadGenerator, receiver: PlatformDouble):
    result = await approve_production(stack, await start(stack, "1.0.0"))
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert [a.approver for a in result.approvals] == ["alice", "bob"]


async def test_active_uploads_hold_the_canary_until_they_finish(stack: Stack, load: LoadGenerator, receiver: PlatformDouble):
    assert (await set_live_activity(stack, SERVICE, active_uploads=2, client_sessions=1))["active_uploads"] == 2
    handle = await start(stack, "2.0.0")
    held = await until(handle, lambda s: s.hold is not None)
    await checked_live_activity(handle, times=3)
    rechecked = await handle.query(ReleaseWorkflow.status)
    assert held.hold.gate == "live_activity" and held.hold.reason == "2 active_uploads, 1 client_sessions"
    assert rechecked.hold == held.hold and rechecked.canary_weight == 0

    await set_live_activity(stack, SERVICE, active_uploads=0, client_sessions=0)
    result = await approve_production(stack, handle)
    assert result.outcome is Outcome.PROMOTED, result.reason

    release = [body for body in receiver.received("team") if body["release_id"] == handle.id]
    events = [body["event"] for body in release]
    assert events[0] == "phase" and events[-1] == "finished" and release[-1]["outcome"] == "promoted"
    [held_note] = [body for body in release if body["event"] == "held"]
    assert held_note["message"] == "start canary 2.0.0 held by live activity: 2 active_uploads, 1 client_sessions"
    [needed] = [body for body in release if body["event"] == "approval_needed"]
    assert needed["stage"] == "production" and needed["approvers"] == ["alice", "bob"] and needed["deadline"]
    [chat] = [body for body in receiver.received("chat") if handle.id in json.dumps(body)]
    assert chat["text"].startswith("Release finished: gallery 2.0.0")
    keys = {d.headers["Idempotency-Key"] for d in receiver.deliveries if d.body.get("release_id") == handle.id}
    assert len(keys) == len(release)
