"""Runs tests/helpers/logging_workflow.py's workflow with the worker's sandbox and logging
configuration, in a process of its own, so that tests/test_logging.py reads exactly
what reaches stderr (a "--- Logging error ---" included).

    python -m tests.helpers.sandbox_logging_probe json|console

One run logs and completes; a second fails its workflow task, which the worker
logs with the traceback.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.local.devstack import installed_binary
from pipeline.logging import configure_logging
from pipeline.temporal import exit_process
from tests.helpers.logging_workflow import LoggingWorkflow
from workers.main import workflow_runner

TASK_QUEUE = "logging"
TASK_FAILURE_TIMEOUT_SECONDS = 20


async def run_workflows() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), dev_server_log_level="error"
    )
    async with env, Worker(
        env.client, task_queue=TASK_QUEUE, workflows=[LoggingWorkflow], workflow_runner=workflow_runner()
    ):
        await env.client.execute_workflow(LoggingWorkflow.run, False, id=f"logs-{uuid.uuid4()}", task_queue=TASK_QUEUE)
        failing = await env.client.start_workflow(LoggingWorkflow.run, True, id=f"fails-{uuid.uuid4()}", task_queue=TASK_QUEUE)
        await _wait_for_task_failure(failing)
        await failing.terminate("probe over")


async def _wait_for_task_failure(handle: WorkflowHandle) -> None:
    """The worker logs a failed task before it reports the failure to the server."""
    deadline = time.monotonic() + TASK_FAILURE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no workflow task failure within {TASK_FAILURE_TIMEOUT_SECONDS}s")


def main() -> None:
    configure_logging(json=sys.argv[1] == "json")
    asyncio.run(run_workflows())
    exit_process(0)


if __name__ == "__main__":
    main()
