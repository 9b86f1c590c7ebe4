"""Activity plumbing: the options every activity of a release shares, and the ways the
workflow runs one: a change that runs to the end, a read, a call that a stop abandons,
and a quick read run as a local activity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pipeline.models import Outcome

from workflows.release.stopped import ReleaseStopped

CHANGE_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10
)


ROLLBACK_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5))
"""A rollback never gives up, and retries often: an operator sees it retrying in the
UI until the target answers, and it lands within seconds of the target coming back."""


TRAFFIC_TIMEOUT = timedelta(seconds=30)
"""A traffic change is a file write or an API patch and its confirmation: seconds."""


HEARTBEAT = timedelta(seconds=5)
"""Every activity that changes the world or waits on it heartbeats: a worker lost in the
middle of one is noticed in seconds and the activity retried elsewhere, not after its
whole timeout."""


LONG_ACTIVITY = timedelta(minutes=2)
"""Reads allowed longer than this (readiness, staging suites) heartbeat too."""


READ_TIMEOUT = timedelta(seconds=20)
"""A short read (the gates file, the rollback window, an expand's SQL) answers in a second
and does not heartbeat: an attempt lost with its worker is retried after this, so it must
be short (the chaos soak saw a lost `load_gates` stall a release for its former 60 s)."""


READ_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5), maximum_attempts=3
)


QUICK_READ_BOUND = timedelta(seconds=2)
"""How long a quick read may take as a local activity. A local activity holds its
workflow task open, so a kill switch that arrives meanwhile waits for it: this bounds
that wait. A read that takes longer runs again as an ordinary activity."""


def activity_options(
    summary: str, timeout: timedelta, retry: RetryPolicy, heartbeat: timedelta | None = None
) -> dict[str, Any]:
    """Options shared by every activity of a release. A long one must heartbeat, so a
    dead worker is noticed in seconds, not at the end of its timeout."""
    return {
        "start_to_close_timeout": timeout,
        "heartbeat_timeout": heartbeat or (HEARTBEAT if timeout > LONG_ACTIVITY else None),
        "retry_policy": retry,
        "summary": summary,
    }


def cause(error: BaseException | None) -> str:
    """The innermost message of an activity failure, which is the one that explains it."""
    while error is not None and error.__cause__ is not None:
        error = error.__cause__
    return str(error)


class ActivityCalls:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _change(
        self,
        activity: Callable,
        arg: Any,
        summary: str,
        *,
        retry: RetryPolicy = CHANGE_RETRIES,
        timeout: timedelta = timedelta(minutes=2),
    ) -> Any:
        """Run an activity that changes the world. It is idempotent, heartbeats, and runs
        to the end even if the release is stopped meanwhile; a failure after retries
        fails the release."""
        try:
            return await workflow.execute_activity(
                activity, arg, **activity_options(summary, timeout, retry, HEARTBEAT)
            )
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {cause(error)}") from None

    async def _read(
        self,
        activity: Callable,
        arg: Any,
        summary: str,
        *,
        timeout: timedelta = READ_TIMEOUT,
        quick: bool = False,
        retry: RetryPolicy = READ_RETRIES,
    ) -> Any:
        """Run an activity that waits or measures (`quick`: one that answers at once);
        a failure after retries fails the release."""
        try:
            if quick:
                return await self._quick_read(activity, arg, summary, timeout)
            return await self._interruptible(activity, arg, summary, timeout, retry=retry)
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {cause(error)}") from None

    async def _quick_read(
        self, activity: Callable, arg: Any, summary: str, timeout: timedelta, *, heartbeat: timedelta | None = None
    ) -> Any:
        """A short read (metrics, the calendar, live activity): a local activity, which
        costs one marker in history instead of three events and a workflow task of its
        own. If it fails or outlasts QUICK_READ_BOUND, whatever the reason, the same read
        runs as an ordinary activity (`_interruptible`): retried, heartbeating, abandoned
        at once by a stop. So a failed local attempt only ever precedes that activity in
        history, and a reader of history can skip it."""
        if self._is_light():
            handle = workflow.start_local_activity(
                activity,
                arg,
                start_to_close_timeout=QUICK_READ_BOUND,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=summary,
            )
            await self._done_unless_stopped(handle)
            if handle.exception() is None:
                return handle.result()
        return await self._interruptible(activity, arg, summary, timeout, heartbeat=heartbeat)

    async def _interruptible(
        self,
        activity: Callable,
        arg: Any,
        summary: str,
        timeout: timedelta,
        *,
        retry: RetryPolicy = READ_RETRIES,
        heartbeat: timedelta | None = None,
    ) -> Any:
        """Run an activity that a kill switch or rejection abandons at once."""
        handle = workflow.start_activity(activity, arg, **activity_options(summary, timeout, retry, heartbeat))
        await self._done_unless_stopped(handle)
        return handle.result()

    async def _done_unless_stopped(self, handle: workflow.ActivityHandle) -> None:
        """Wait for `handle`; a stop meanwhile abandons it and is raised at once."""
        await workflow.wait_condition(lambda: handle.done() or self._stop is not None)
        if not handle.done():
            handle.cancel()
            raise self._stop
