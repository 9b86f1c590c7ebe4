"""One release per service at a time.

The lock is a child workflow with a fixed id per service. Temporal refuses to start
a second running workflow with the same id, which makes the lock atomic without
any store of our own; the parent-close policy ends the lock with its release even
when the release is terminated, so a lock can never be leaked.
"""

from __future__ import annotations

from temporalio import workflow


def lock_id(service: str) -> str:
    return f"release-lock-{service}"


@workflow.defn
class ServiceLockWorkflow:
    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, holder: str) -> str:
        await workflow.wait_condition(lambda: self._released)
        return holder

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.query
    def holder(self) -> str:
        return workflow.info().parent.workflow_id if workflow.info().parent else ""
