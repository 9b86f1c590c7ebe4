"""The demo's release trains (issue #12), after its single releases: shoot-service and
the gallery released together, the gallery after shoot-service because its new version
calls the new shoot API (pipeline/gallery/dependency.py: deployed first, it would answer
502).

  1. train spring-2027: shoot-service 2.0.0, then gallery 2.0.0 (which needs the new
     shoot API): both promoted;
  2. train summer-2027: shoot-service 2.1.0 is promoted, then the canary of gallery
     2.1.0 fails (30% of its responses are errors): the gallery is rolled back and the
     train reverts the promoted shoot-service to 2.0.0, which it kept warm, so the
     revert is a routing change.

Approvals are per train: one approval per stage (alice for canary, bob and carol for
production) covers both members as each reaches that stage. A load generator on
shoot-service joins the demo's load on the gallery; each line shows the members and
which versions served the last 3 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle

from pipeline.gallery.dependency import NEEDS_VARIABLE, NEW_API_PATH
from pipeline.http import http_client
from pipeline.local.devstack import Stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import MemberStatus, TrainResult, TrainStatus
from pipeline.terminal import traffic_bar

SHOOT, GALLERY = "shoot-service", "gallery"
TRAIN_POLICY = {
    "canary_weight": 20,
    "canary_duration_seconds": 9,
    "analysis_interval_seconds": 3,
    "steps": [50, 100],
    "step_interval_seconds": 4,
    "retire_delay_seconds": 1,
    "bake_seconds": 4,
    "min_requests": 5,
    "test_suites": ["unit"],
    "live_activity_recheck_seconds": 2,
}
"""Shorter than the demo's single releases: two members per train. The unit suite cannot
see the failing gallery; its canary's production traffic can."""
APPROVALS = [("canary", "alice"), ("production", "bob"), ("production", "carol")]
GALLERY_ENV = {"GALLERY_WRITES_PRIORITY": "1", NEEDS_VARIABLE: SHOOT}
"""The gallery's writers fill shoots.priority (the demo's 1.1.0 contracted it), and from
2.0.0 it needs the new shoot API."""
TRAINS = [
    ("spring-2027", "2.0.0", {}, "promoted"),
    ("summer-2027", "2.1.0", {"GALLERY_ERROR_RATE": "0.3"}, "rolled_back"),
]

Say = Callable[[str], None]


def train_request(name: str, version: str, gallery_faults: dict[str, str]) -> dict[str, Any]:
    return {
        "train": name,
        "target": "local",
        "releases": [
            {"service": SHOOT, "version": version, "policy": TRAIN_POLICY, "author": "demo"},
            {"service": GALLERY, "version": version, "depends_on": [SHOOT], "env": {**GALLERY_ENV, **gallery_faults},
             "policy": TRAIN_POLICY, "author": "demo"},
        ],
        "policy": {"approvals": "per_train"},
    }


async def run_train_demo(stack: Stack, gallery_load: LoadGenerator, say: Say) -> bool:
    """Both trains, each line a change; True when each ended as the story says."""
    outcomes = []
    async with LoadGenerator(stack.local.http_url, SHOOT, rate_per_second=30) as shoot_load:
        loads = {SHOOT: shoot_load, GALLERY: gallery_load}
        for name, version, faults, _ in TRAINS:
            story = "fails at the gallery's canary" if faults else "the gallery needs the new shoot API"
            say(f"=== train {name}: {SHOOT} {version}, then {GALLERY} {version} ({story})")
            handle = await stack.client.start_workflow(
                "ReleaseTrainWorkflow", train_request(name, version, faults), id=f"train-{name}-{uuid.uuid4().hex[:6]}",
                task_queue=stack.task_queue, result_type=TrainResult, static_summary=f"train {name} on local",
            )
            for stage, approver in APPROVALS:
                await handle.signal("approve", {"stage": stage, "approver": approver, "comment": "demo"})
            say(f"started workflow {handle.id}; {', '.join(f'{a} approves {s}' for s, a in APPROVALS)} for the train")
            result = await follow_train(handle, loads, say)
            say(f"=== train {name}: {result.outcome.value.upper()}: {result.reason}"
                + (f" (caused by {result.culprit})" if result.culprit else ""))
            say(f"{SHOOT} {NEW_API_PATH}: {await new_api_answer(stack)}")
            outcomes.append(result.outcome.value)
    return outcomes == [expected for *_, expected in TRAINS]


async def follow_train(handle: WorkflowHandle, loads: dict[str, LoadGenerator], say: Say) -> TrainResult:
    """Print the train's timeline as it grows and a line each time a member moves."""
    shown, last_moves = 0, []
    while True:
        status: TrainStatus = await handle.query("status", result_type=TrainStatus)
        for entry in status.timeline[shown:]:
            say(f"train: {entry.message}")
        shown = len(status.timeline)
        moves = [(m.state, m.phase, m.canary_weight) for m in status.members]
        if moves != last_moves:
            say(" | ".join(member_line(member, loads[member.service]) for member in status.members))
            last_moves = moves
        if status.outcome is not None:
            return await handle.result()
        await asyncio.sleep(1)


def member_line(member: MemberStatus, load: LoadGenerator) -> str:
    """State, phase and traffic of a member, and which versions served it the last 3 s."""
    served = load.served_since(time.monotonic() - 3)
    versions = ", ".join(f"{version} {count}" for version, count in sorted(served.items())) or "none"
    return (f"{member.service} {member.state} {member.phase or ''} {traffic_bar(member.canary_weight, member.version)}"
            f" served {versions}")


async def new_api_answer(stack: Stack) -> str:
    async with http_client(base_url=stack.local.http_url, timeout=5) as client:
        response = await client.get(NEW_API_PATH, headers={"Host": f"{SHOOT}.localhost"})
    return f"{response.status_code} from {response.headers.get('X-Served-Version', 'the router')}"
