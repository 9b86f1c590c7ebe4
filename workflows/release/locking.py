"""The service's release lock: take it (refuse or queue, by policy), and free it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pipeline.models import Concurrency, Outcome, Phase
    from workflows.lock import LockGuard, ServiceLockWorkflow, lock_id

from workflows.release.stopped import ReleaseStopped

LOCK_RETRY_MAX_SECONDS = 60


LOCK_GRACE_SECONDS = 10
"""Even a refusing release waits this long: a lock whose release just ended is freed
a moment later, and a release started right after it should not be refused."""


GUARDED_LOCK_PATCH = "guarded-lock"
"""Releases started before continue-as-new hold a lock that ends with their run."""


LOCK_END_PATCH = "await-lock-end"
"""The release ends after its lock child does. Ending first let the child's completion
arrive during the release's last workflow task (UNHANDLED_COMMAND in 9-16% of releases
at scale, each a full replay, and a stall of the test server's time skipping in trains)."""


from workflows.release.waiting import only_time


class Locking:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _acquire_lock(self) -> None:
        """Take the service's release lock, or refuse, or queue for it, by policy. The
        lock is a guard that outlives this run (a continued run keeps it) and ends
        with the release however it ends; see workflows/lock.py."""
        if self._progress.locked:
            return
        request = self._request
        patience = LOCK_GRACE_SECONDS if request.policy.concurrency is Concurrency.REFUSE else None
        waited, delay = 0, 1
        while True:
            await self._continue_if_history_long()
            try:
                self._lock = await self._start_lock()
                self._progress.locked = True
                return
            except WorkflowAlreadyStartedError:
                busy = (
                    f"another release of {request.service} is running (lock {lock_id(request.service)}); find it with "
                    f'temporal workflow list --query \'ReleaseService="{request.service}" AND ExecutionStatus="Running"\''
                )
                if patience is not None and waited >= patience:
                    raise ReleaseStopped(Outcome.FAILED, busy) from None
                if self._status.phase is not Phase.WAITING_FOR_LOCK:
                    self._enter(Phase.WAITING_FOR_LOCK, busy)
                await self._wait_until(only_time, delay)
                waited, delay = waited + delay, min(delay * 2, LOCK_RETRY_MAX_SECONDS)

    async def _start_lock(self) -> workflow.ChildWorkflowHandle:
        request = self._request
        if not self._patched(GUARDED_LOCK_PATCH):
            return await workflow.start_child_workflow(
                ServiceLockWorkflow.run,
                workflow.info().workflow_id,
                id=lock_id(request.service),
                parent_close_policy=ParentClosePolicy.TERMINATE,
            )
        self._lock_guarded = True
        guard = LockGuard(holder=workflow.info().workflow_id, service=request.service, target=request.target)
        return await workflow.start_child_workflow(
            ServiceLockWorkflow.run,
            args=[guard.holder, guard],
            id=lock_id(request.service),
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"release lock of {request.service} on {request.target}, held by {guard.holder}",
        )

    async def _release_lock(self) -> None:
        """Free the lock for the next release. Should the signal fail, the lock still
        ends when it sees this release closed (or, for a lock started before guards
        existed, by its parent-close policy)."""
        if not self._progress.locked:
            return
        self._progress.locked = False
        if self._lock_guarded:
            lock = self._lock or workflow.get_external_workflow_handle(lock_id(self._request.service))
            release = lock.signal(ServiceLockWorkflow.release, workflow.info().workflow_id)
        else:
            release = self._lock.signal(ServiceLockWorkflow.release)
        try:
            await release
        except ApplicationError as error:
            self._note(f"lock release signal failed ({error}); the lock ends when it sees this release closed")
            return
        await self._await_lock_end()

    async def _await_lock_end(self) -> None:
        """The lock ends as soon as it reads the release signal; a continued run, which
        holds no child handle, ends without waiting for it."""
        if self._lock is None or not self._patched(LOCK_END_PATCH):
            return
        try:
            await self._lock
        except ChildWorkflowError as error:
            self._note(f"the lock ended with {error.cause or error} after it was released")
