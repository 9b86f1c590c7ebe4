"""Record the release-train histories the replay test keeps running against
(tests/histories/trains/): a promoted train, a train rolled back by a failing member
(its promoted member reverted), and one member's own history (with its reports to the
train). On the real dev server with policies of seconds (see tests/test_train_workflow.py
for why not the time-skipping server).

    .venv/bin/python -m tests.record_train_histories
"""

from __future__ import annotations

import asyncio
import json

from temporalio.client import Client
from temporalio.worker import Worker

from pipeline.temporal import exit_process
from tests.helpers.harness import start_dev_server
from tests.helpers.train_world import TrainWorld
from tests.record_histories import HISTORIES
from tests.test_train_workflow import member
from workflows import ALL as WORKFLOWS
from workflows.train import ReleaseTrainWorkflow

TRAINS = HISTORIES / "trains"
TASK_QUEUE = "record-trains"


def replay_id(name: str) -> str:
    """A train's workflow id: its members' ids derive from it, so a replay must use the
    one it was recorded with."""
    return f"history-train-{name}"


async def record(client: Client, name: str, releases: list[dict], world: TrainWorld, member_too: str | None = None) -> None:
    async with Worker(client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()):
        train_id = replay_id(name)
        handle = await client.start_workflow(
            ReleaseTrainWorkflow.run, {"train": name, "releases": releases}, id=train_id, task_queue=TASK_QUEUE
        )
        await handle.result()
        save(name, await handle.fetch_history())
        if member_too:
            save("member", await client.get_workflow_handle(f"{train_id}.{member_too}").fetch_history())


def save(name: str, history) -> None:
    TRAINS.mkdir(exist_ok=True)
    (TRAINS / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
    print(f"recorded trains/{name}: {len(history.events)} events")


async def main() -> None:
    async with await start_dev_server() as env:
        await record(env.client, "promoted", [member("shoot"), member("gallery", "shoot")], TrainWorld(), member_too="shoot")
        await record(
            env.client, "rolled_back", [member("shoot"), member("gallery", "shoot")], TrainWorld(failing_services={"gallery"})
        )


if __name__ == "__main__":
    asyncio.run(main())
    exit_process(0)
