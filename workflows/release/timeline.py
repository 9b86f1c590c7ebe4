"""Status bookkeeping: phases, the timeline, ignored signals and the details the
Temporal UI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline import search_attributes
    from pipeline.models import NotificationEvent, Phase, TimelineEntry
    from workflows.payloads import Malformed, bounded, parse_one


TIMELINE_LIMIT = 200


TIMELINE_MESSAGE_LIMIT = 2_500


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def parse_iso(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment)


PHASE_EVENT = {Phase.ROLLBACK: NotificationEvent.ROLLBACK, Phase.DONE: NotificationEvent.FINISHED}
"""Phases whose entry is announced as its own event, not as a phase change."""


class Timeline:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _enter(self, phase: Phase, message: str, **notification: Any) -> None:
        self._status.phase = phase
        self._note(message)
        workflow.upsert_search_attributes([search_attributes.PHASE.value_set(phase.value)])
        workflow.set_current_details(self._details())
        self._notify(PHASE_EVENT.get(phase, NotificationEvent.PHASE), message, **notification)

    def _note(self, message: str) -> None:
        message = bounded(message, TIMELINE_MESSAGE_LIMIT)
        entry = TimelineEntry(at=self._now(), phase=self._status.phase, message=message)
        self._status.timeline = [*self._status.timeline, entry][-TIMELINE_LIMIT:]
        self._observe_status()
        workflow.logger.info(
            message,
            extra={
                "release_id": self._status.release_id,
                "service": self._status.service,
                "phase": self._status.phase.value,
            },
        )

    def _ignore(self, message: str) -> None:
        message = bounded(message)
        self._status.ignored_signals = [*self._status.ignored_signals, message][-TIMELINE_LIMIT:]
        self._note(f"ignored {message}")

    def _details(self) -> str:
        status = self._status
        lines = [
            f"**{status.phase.value}**: {status.service} {status.version}",
            f"canary traffic: {status.canary_weight}%",
        ]
        if status.pending_approval:
            deadline = f" until {status.approval_deadline}" if status.approval_deadline else ""
            lines.append(f"waiting for **{status.pending_approval.value}** approval{deadline}")
        if status.hold:
            lines.append(f"**held** by {status.hold.gate}: {status.hold.why()}")
        if status.break_glass:
            lines.append(f"**break-glass** by {status.break_glass.actor}: {status.break_glass.reason}")
        if status.paused:
            lines.append("**paused**")
        if status.last_analysis:
            lines.append(f"last analysis: {status.last_analysis.verdict.value}: {status.last_analysis.summary}")
        return "\n\n".join(lines)

    def _parse_signal(self, name: str, model: type, payloads: tuple[Any, ...], *, optional: bool = False) -> Any:
        """Signals come from people and scripts: a malformed one is recorded and ignored."""
        try:
            return parse_one(model, payloads, optional=optional)
        except Malformed as malformed:
            self._ignore(f"{name}: {malformed}")
            return None

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="seconds")
