"""The worker a simulation runs its release on: the production worker's workflows and
activities, wired for one short-lived run in the simulating process.

What makes it differ from workers/main.py, each a measured cost of `releasectl simulate`:
- No workflow sandbox. The sandbox guards a long-lived worker's workflows against
  non-determinism and shared state, which replay tests (tests/test_replay.py) and the
  production worker keep guarding; here it re-imported the workflow modules for the run
  and slowed every activation (about 0.5 s of a default-policy release).
- A fixed build id: without one the SDK hashes the bytecode of every loaded module
  when the worker is built, compiling each from source where no bytecode is cached
  (about 1 s).
- The release's status is kept as its run ends (`final_status`) instead of asked by a
  `status` query afterwards: the query replayed the whole finished history (0.5-1.5 s),
  and on temporal-test-server a query could stop later workflows skipping time.

- SciPy deferred, and debug mode: activations run on the event loop instead of a
  thread (0.1-0.2 s less of a default-policy release), without the 2 s deadlock
  detector. SciPy is imported when a comparison first needs it, inside an activation
  here: 1-2.5 s, which the detector would fail and interrupt, leaving SciPy half
  imported. Simulations that compare nothing (a default policy) never import it.

And one that is no cost but a hang: an exception in workflow code fails the simulated
release (`workflow_failure_exception_types`) instead of failing its workflow task. A
production worker retries such a task until a fixed worker deploys; a simulation has
nobody to deploy one, and retried it every 10 s, without end.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from pipeline.models import ReleaseStatus

BUILD_ID = "releasectl-simulate"
RELEASE_WORKFLOW = "ReleaseWorkflow"

_final_status: dict[str, ReleaseStatus] = {}


def final_status(release_id: str) -> ReleaseStatus | None:
    """The status of release `release_id` when its last run on a simulation worker ended."""
    return _final_status.pop(release_id, None)


class _StatusAtEnd(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await super().execute_workflow(input)
        finally:
            info = workflow.info()
            if info.workflow_type == RELEASE_WORKFLOW and not workflow.unsafe.is_replaying():
                _final_status[info.workflow_id] = workflow.instance().status()


class _KeepStatus(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _StatusAtEnd


def import_worker_modules() -> tuple[list[type], ModuleType]:
    """The worker's workflows and activities. Imported when a simulation starts, not with
    this module: they take 0.3-0.4 s, which no other releasectl command needs. Without
    SciPy until a comparison needs it (pipeline.decisions.baseline.DEFER_STATISTICS, not
    imported from there: importing that module is what must not load SciPy yet). The
    setting is taken back after the imports: a worker this process starts later (a test's
    local stack) must load SciPy before its workflows run, or a late import inside an
    activation trips the deadlock detector and fails the workflow task."""
    deferring = "PIPELINE_DEFER_STATISTICS" not in os.environ
    os.environ.setdefault("PIPELINE_DEFER_STATISTICS", "1")
    try:
        import activities
        import workflows

        return workflows.ALL, activities
    finally:
        if deferring:
            del os.environ["PIPELINE_DEFER_STATISTICS"]


def simulation_worker(client: Client, task_queue: str) -> Worker:
    all_workflows, activities = import_worker_modules()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=all_workflows,
        activities=activities.ALL,
        workflow_runner=UnsandboxedWorkflowRunner(),
        build_id=BUILD_ID,
        interceptors=[_KeepStatus()],
        workflow_failure_exception_types=[Exception],
        debug_mode=True,
    )
