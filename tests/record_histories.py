"""Record the workflow histories that the replay test keeps running against.

    .venv/bin/python -m tests.record_histories

Run it only when a workflow change is meant to be incompatible with running
releases (and so ships under a new workflow type or a `workflow.patched` branch);
otherwise the replay test's failure is the point: the change would break releases
that are in flight when the new worker deploys.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.devstack import installed_binary
from pipeline.temporal import exit_process
from tests.conftest import register_search_attributes
from tests.fakes import FAILING, FakeWorld
from tests.harness import REQUEST, Drive
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "record"


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


async def main() -> None:
    async def approve_both(handle):
        await drive.approve(handle, "canary")
        await drive.approve(handle, "production")

    async def approve_canary(handle):
        await drive.approve(handle, "canary")

    async def reject_canary(handle):
        await drive.until(handle, lambda s: s.pending_approval == "canary")
        await handle.signal(ReleaseWorkflow.reject, {"stage": "canary", "approver": "dave", "comment": "no"})

    async def nothing(handle):
        return None

    scenarios = [
        ("promoted", REQUEST, FakeWorld(), approve_both),
        ("rolled_back", REQUEST, FakeWorld(canary_health=lambda weight: FAILING), approve_canary),
        ("rejected", REQUEST, FakeWorld(), reject_canary),
        ("invalid_request", {"version": "1"}, FakeWorld(), nothing),
    ]
    for name, request, world, drive_it in scenarios:
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
