"""Record the workflow histories that the replay test keeps running against.

    .venv/bin/python -m tests.record_histories [SCENARIO ...]

Run it only when a workflow change is meant to be incompatible with running
releases (and so ships under a new workflow type or a `workflow.patched` branch);
otherwise the replay test's failure is the point: the change would break releases
that are in flight when the new worker deploys.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.local.devstack import installed_binary
from pipeline.temporal import exit_process
from tests.helpers.fakes import FAILING, FakeWorld
from tests.helpers.harness import REQUEST, Drive, register_search_attributes
from tests.helpers.http_double import PlatformDouble
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "record"
REVERT = {"service": REQUEST["service"], "revert": {"actor": "carol", "reason": "recorded"}}
MIGRATING = {**REQUEST, "migration": {"expand": "0002", "contract": "0003"}}


def violated_after(clean_runs: int):
    """Consistency checks clean for `clean_runs` runs, then 4 photos without a shoot."""
    runs = iter([{}] * clean_runs)
    return lambda: next(runs, {"photos_without_shoot": 4})


async def record(env: WorkflowEnvironment, name: str, request, world: FakeWorld, drive_it) -> None:
    async with Worker(env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()):
        handle = await env.client.start_workflow(ReleaseWorkflow.run, request, id=f"history-{name}", task_queue=TASK_QUEUE)
        await drive_it(handle)
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
    print(f"recorded {name}: {len(history.events)} events")


GATES = {
    "defaults": {
        "approvals": {"production": {"users": ["alice", "bob"], "min_approvals": 2}},
        "webhooks": [{"name": "team", "url_env": "RECORD_HOOK_URL"}],
    }
}


async def main() -> None:
    async def approve_both(handle):
        await drive.approve(handle, "canary")
        await drive.until(handle, lambda s: s.pending_approval == "production")
        for approver in ("alice", "bob"):
            await handle.execute_update(ReleaseWorkflow.submit_approval, {"stage": "production", "approver": approver})

    async def approve_canary(handle):
        await drive.approve(handle, "canary")

    async def reject_canary(handle):
        await drive.until(handle, lambda s: s.pending_approval == "canary")
        await handle.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "dave", "comment": "no"})

    async def break_glass_then_clear_uploads(handle):
        await drive.until(handle, lambda s: s.hold is not None and s.hold.gate == "window")
        await handle.execute_update(ReleaseWorkflow.submit_break_glass, {"actor": "olivia", "reason": "hotfix"})
        await drive.until(handle, lambda s: s.hold is not None and s.hold.gate == "live_activity")
        platform.activity["active_uploads"] = 0

    async def nothing(handle):
        return None

    with PlatformDouble() as platform, tempfile.TemporaryDirectory() as scratch:
        gates_file = Path(scratch) / "gates.json"
        os.environ.update(PIPELINE_GATES_FILE=str(gates_file), RECORD_HOOK_URL=platform.hook_url("team"))
        now = datetime.now(timezone.utc)  # the test server starts its clock at the real time
        held = {
            "defaults": {
                "break_glass": {"users": ["olivia"]},
                "calendar": {"freezes": [{"reason": "recording freeze", "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=2)).isoformat()}]},
                "live_activity": {"url": f"{platform.url}/activity"},
            }
        }
        scenarios = [
            ("promoted", GATES, REQUEST, FakeWorld(), approve_both),
            ("rolled_back", GATES, REQUEST, FakeWorld(canary_health=lambda weight: FAILING), approve_canary),
            ("rejected", GATES, REQUEST, FakeWorld(), reject_canary),
            ("expired", GATES, {**REQUEST, "policy": {"approval_timeout_seconds": 600}}, FakeWorld(), nothing),
            ("held_then_promoted", held, {**REQUEST, "policy": {"required_approvals": []}}, FakeWorld(), break_glass_then_clear_uploads),
            ("rolled_back_in_bake", GATES, REQUEST, FakeWorld(promoted_health=FAILING), approve_both),
            ("reverted", GATES, REVERT, FakeWorld(), nothing),
            ("migrated", GATES, MIGRATING, FakeWorld(), approve_both),
            ("migration_rolled_back", GATES, MIGRATING, FakeWorld(violations=violated_after(3)), approve_canary),
            ("invalid_request", GATES, {"version": "1"}, FakeWorld(), nothing),
        ]
        only = set(sys.argv[1:])
        for name, gates, request, world, drive_it in scenarios:
            if only and name not in only:
                continue
            gates_file.write_text(json.dumps(gates))
            platform.activity["active_uploads"] = 2
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=pydantic_data_converter, test_server_existing_path=installed_binary("temporal-test-server")
            )
            async with env:
                await register_search_attributes(env.client)
                drive = Drive(env)
                await record(env, name, request, world, drive_it)


if __name__ == "__main__":
    asyncio.run(main())
    exit_process(0)
