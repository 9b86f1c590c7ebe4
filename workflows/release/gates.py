"""Production gates: the checks every production change passes, in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import check_calendar, check_live_activity
    from pipeline.models import CalendarRequest, CalendarVerdict, GateHold, NotificationEvent, Outcome, OutsideWindow

from workflows.release.calls import HEARTBEAT, cause
from workflows.release.stopped import ReleaseStopped
from workflows.release.timeline import iso
from workflows.release.waiting import only_time


class Gates:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _gate_production_change(self, change: str, gates: Sequence[Gate] | None = None) -> None:
        """Hold a production change until every gate (by default PRODUCTION_GATES) is
        clear at once. A gate that is not clear holds the change itself (waiting, or
        failing the release) and then every gate is checked again from the first."""
        if self._status.gates is None:
            return
        while not await self._all_gates_clear(change, PRODUCTION_GATES if gates is None else gates):
            pass
        self._progress.gate_busy_since = None
        if self._status.hold is not None:
            self._note(f"{change}: gates clear")
            self._status.hold = None

    async def _all_gates_clear(self, change: str, gates: Sequence[Gate]) -> bool:
        for gate in gates:
            if not await gate(self, change):
                return False
        return True

    async def _calendar_allows(self, change: str) -> bool:
        """True when the calendar allows `change` now. Otherwise fail, or wait until the
        window opens (or glass is broken) and return False so that the caller re-checks."""
        if self._status.break_glass is not None:
            return True
        try:
            verdict = await self._read_calendar()
        except ActivityError as error:
            # A gates file broken mid-edit must not roll back every release at a gate: hold and re-read.
            self._show_hold(GateHold(gate="window", change=change, reason=f"calendar unreadable: {cause(error)}"))
            retry_at = workflow.now() + timedelta(seconds=self._request.policy.live_activity_recheck_seconds)
            await self._wait_watching_canary(lambda: self._status.break_glass is not None, retry_at)
            return False
        if verdict.open:
            return True
        policy = self._request.policy
        if policy.outside_window is OutsideWindow.FAIL or verdict.opens_at is None:
            opens = f"; next window {iso(verdict.opens_at)}" if verdict.opens_at else ""
            raise ReleaseStopped(Outcome.FAILED, f"{change} not allowed now: {verdict.reason}{opens}")
        wait = (verdict.opens_at - workflow.now()).total_seconds()
        if self._status.canary_weight > 0 and wait > policy.max_canary_hold_seconds:
            # A canary half-rolled for days, analysed every interval, is neither safe nor
            # within a workflow history's size: take it back and release again in the window.
            raise ReleaseStopped(
                Outcome.FAILED,
                f"{change} not allowed now: {verdict.reason}; the next window ({iso(verdict.opens_at)}) is "
                f"{wait / 3600:.1f} h away, more than a live canary may be held ({policy.max_canary_hold_seconds / 3600:g} h)",
            )
        self._show_hold(GateHold(gate="window", change=change, reason=verdict.reason, until=iso(verdict.opens_at)))
        await self._wait_watching_canary(lambda: self._status.break_glass is not None, verdict.opens_at)
        return False

    async def _read_calendar(self) -> CalendarVerdict:
        return await self._quick_read(
            check_calendar,
            CalendarRequest(ref=self._ref(), at=workflow.now()),
            "check the deployment calendar",
            timedelta(seconds=30),
        )

    async def _no_live_activity(self, change: str) -> bool:
        """True when no uploads, processing jobs or client sessions are live. Otherwise
        hold for the policy's re-check interval and return False; give up after the
        policy's bound, naming what was still active."""
        live = await self._live_activity(change)
        if live is None:
            return True
        policy = self._request.policy
        busy_since = self._progress.gate_busy_since = self._progress.gate_busy_since or workflow.now()
        waited = (workflow.now() - busy_since).total_seconds()
        if waited >= policy.live_activity_wait_seconds:
            raise ReleaseStopped(Outcome.FAILED, f"{change} held {waited:.0f}s for live activity, still active: {live}")
        self._show_hold(GateHold(gate="live_activity", change=change, reason=live))
        await self._wait_watching_canary(
            only_time, workflow.now() + timedelta(seconds=policy.live_activity_recheck_seconds)
        )
        return False

    async def _live_activity(self, change: str) -> str | None:
        """What is live on the platform, or None when nothing is. An endpoint that
        cannot be read counts as live: unknown is never clear."""
        try:
            report = await self._quick_read(
                check_live_activity,
                self._ref(),
                f"check live activity before {change}",
                timedelta(seconds=30),
                heartbeat=HEARTBEAT,
            )
        except ActivityError as error:
            return f"unknown ({cause(error)})"
        return None if report.clear else report.detail

    def _show_hold(self, hold: GateHold) -> None:
        """Show why a production change waits; tell the webhooks when the reason changes."""
        if self._status.hold != hold:
            message = f"{hold.change} held by {hold.gate.replace('_', ' ')}: {hold.why()}"
            self._status.hold = hold
            self._note(message)
            self._notify(NotificationEvent.HELD, message)
            workflow.set_current_details(self._details())


Gate = Callable[[Gates, str], Awaitable[bool]]


PRODUCTION_GATES: tuple[Gate, ...] = (
    Gates._calendar_allows,
    Gates._no_live_activity,
)
"""The checks every production change (canary start, each step, promote) passes, in
order. A gate is a method that returns True when clear, or holds the change (or fails
the release) and returns False. Adding a gate: one method here, one activity."""


REVERT_GATES: tuple[Gate, ...] = (Gates._no_live_activity,)
"""A revert reduces risk, so the deployment calendar does not hold it; it still never
interrupts live uploads or shoots."""
