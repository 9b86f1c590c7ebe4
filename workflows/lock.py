"""One release per service at a time, and a guard for when a release dies.

The lock is a child workflow with a fixed id per service. Temporal refuses to start
a second running workflow with the same id, which makes the lock atomic without
any store of our own.

A release that continues as new must keep its lock, so the lock is started with
the ABANDON parent-close policy and guards itself: every HOLDER_CHECK_SECONDS it
asks whether its holder (the release's workflow id, whatever run it is in) is still
open. When the holder closed without releasing the lock (terminated, timed out,
failed in its rollback), the lock first sends all of the service's traffic back to
stable and stops the canary and staging versions, then ends: a release that dies
never leaves a canary serving. Locks started before guards existed (no LockGuard)
keep the old behaviour: they end with their parent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import release_state, set_traffic, stop_version
    from pipeline.models import LockGuard, ServiceRef, Slot, SlotRequest, TrafficRequest
    from pipeline.telemetry import count_orphaned_rollback

HOLDER_CHECK_SECONDS = 60
CONTINUE_AFTER_CHECKS = 500
"""About 6 events a check (11 before LOCAL_CHECK_PATCH): the lock continues as new long
before its history is large."""
LOCAL_CHECK_PATCH = "lock-local-check"
"""Since this patch the holder check is a local activity: a marker, not three events and
a workflow task of its own, each minute of every release (an hour-long release's lock
made 60 such checks)."""
OPEN_STATES = {"RUNNING", "CONTINUED_AS_NEW"}
GUARD_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))

__all__ = ["LockGuard", "ServiceLockWorkflow", "lock_id"]


def lock_id(service: str) -> str:
    return f"release-lock-{service}"


@workflow.defn
class ServiceLockWorkflow:
    def __init__(self) -> None:
        self._released = False
        self._holder = ""

    @workflow.run
    async def run(self, holder: str, *guarded: Any) -> str:
        self._holder = holder
        if not guarded:
            await workflow.wait_condition(lambda: self._released)
            return holder
        guard = LockGuard.model_validate(guarded[0])
        for _ in range(CONTINUE_AFTER_CHECKS):
            try:
                await workflow.wait_condition(lambda: self._released, timeout=HOLDER_CHECK_SECONDS)
                return holder
            except TimeoutError:
                pass
            state = await self._holder_state(holder)
            if state not in OPEN_STATES and not self._released:
                await self._roll_back(guard, state)
                return holder
        workflow.continue_as_new(args=[holder, guard.model_dump(mode="json")])

    async def _holder_state(self, holder: str) -> str:
        options: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=30), "retry_policy": GUARD_RETRIES,
            "summary": f"is {holder} still open",
        }
        if workflow.patched(LOCAL_CHECK_PATCH):
            return await workflow.execute_local_activity(release_state, holder, **options)
        return await workflow.execute_activity(release_state, holder, **options)

    @workflow.signal
    def release(self, *holder: Any) -> None:
        """Free the lock. A release names itself, so that a late signal from a release
        that lost the lock can never free its successor's."""
        if not holder or holder[0] == self._holder:
            self._released = True

    @workflow.query
    def holder(self) -> str:
        return self._holder

    async def _roll_back(self, guard: LockGuard, state: str) -> None:
        """The holder died without releasing: do what its rollback would have done."""
        workflow.logger.warning(f"{guard.holder} closed as {state} holding the lock: rolling {guard.service} back to stable")
        ref = ServiceRef(release_id=guard.holder, service=guard.service, target=guard.target)
        options = {"start_to_close_timeout": timedelta(seconds=30), "heartbeat_timeout": timedelta(seconds=5), "retry_policy": GUARD_RETRIES}
        await workflow.execute_activity(
            set_traffic, TrafficRequest(ref=ref, canary_weight=0, segments_to_canary=False, sequence=2**31),
            summary="all traffic to stable", **options,
        )
        count_orphaned_rollback(guard.service)
        for slot in (Slot.CANARY, Slot.STAGING):
            await workflow.execute_activity(stop_version, SlotRequest(ref=ref, slot=slot), summary=f"stop {slot.value}", **options)
