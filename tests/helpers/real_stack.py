"""Releases on the real local stack (pipeline/local/devstack.py: the Temporal dev
server, a worker process, Traefik and sample-service processes): the policies that
keep them short, starting one, polling its status, approving it, and what served
the load. Used by the integration tests and benchmarks/chaos/."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from pipeline.local.devstack import Stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local_activities import completed_local_activity
from pipeline.models import ReleaseResult, ReleaseStatus
from workflows.release import ReleaseWorkflow

SERVICE = "gallery"
FAST_POLICY = {
    "canary_weight": 20,
    "canary_duration_seconds": 6,
    "analysis_interval_seconds": 2,
    "steps": [50, 100],
    "step_interval_seconds": 4,
    "retire_delay_seconds": 1,
    "bake_seconds": 4,
    "min_requests": 5,
    "test_suites": ["integration", "e2e"],
}
"""A release through every phase, with approvals, in about half a minute."""
QUICK_POLICY = {
    "canary_weight": 20,
    "canary_duration_seconds": 4,
    "analysis_interval_seconds": 2,
    "steps": [100],
    "step_interval_seconds": 2,
    "retire_delay_seconds": 1,
    "bake_seconds": 2,
    "min_requests": 5,
    "test_suites": ["unit"],
    "required_approvals": [],
}
"""Shorter still: one staging suite, one step, no approvals the policy asks for."""


async def start_release(
    stack: Stack, version: str, policy: dict[str, Any], service: str = SERVICE, **fields: Any
) -> WorkflowHandle:
    """Start a release of `service` at `version` on the local target, with `policy`
    and any other request `fields`."""
    request = {"service": service, "version": version, "target": "local", "policy": policy, **fields}
    return await stack.client.start_workflow(
        ReleaseWorkflow.run, request, id=f"release-{service}-{version}-{uuid.uuid4().hex[:6]}", task_queue=stack.task_queue
    )


QUERY_TIMEOUT = timedelta(seconds=5)


async def until(handle: WorkflowHandle, condition: Callable[[ReleaseStatus], bool], within: float = 60) -> ReleaseStatus:
    """Poll the status query until `condition` holds. A query that fails or does not
    answer within QUERY_TIMEOUT is asked again: it can race a continue-as-new or a
    worker restart; one that keeps failing fails the test at the deadline."""
    deadline = time.monotonic() + within
    current: ReleaseStatus | str | None = None
    while True:
        try:
            current = await handle.query(ReleaseWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
            if condition(current):
                return current
        except (RPCError, WorkflowQueryFailedError) as error:
            current = f"query failed: {error}"
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s; last status: {current}")
        await asyncio.sleep(0.1)


async def approve_all(handle: WorkflowHandle, approver: str = "alice") -> ReleaseResult:
    """Approve each stage as it comes up, then return the result."""
    while (current := await until(handle, lambda s: s.pending_approval is not None or s.outcome is not None)).outcome is None:
        stage = current.pending_approval
        await handle.signal(ReleaseWorkflow.approve, {"stage": stage, "approver": approver})
        await until(handle, lambda s: s.pending_approval != stage)
    return await asyncio.wait_for(handle.result(), 120)


def traffic_log(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.local.traffic_log.read_text().splitlines()]


async def served_by(load: LoadGenerator, version: str, count: int = 40, within: float = 20) -> dict[str, int]:
    """Wait until `count` responses came after now, and return them by version."""
    since = time.monotonic()
    deadline = since + within
    while sum(load.served_since(since).values()) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return dict(load.served_since(since))


async def activity_completions(handle: WorkflowHandle) -> list[tuple[str, bytes, datetime]]:
    """From a release's history, each completed activity in order: its type, its input
    (the payloads' bytes; empty for a local activity, whose input history does not
    keep) and when it completed. Benchmarks time a release from it."""
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
        elif (local := completed_local_activity(event)) is not None:
            completions.append((local.activity_type, b"", event.event_time.ToDatetime()))
    return completions
