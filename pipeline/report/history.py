"""Reading a release's history: its events, decoded, paired and in order.

The one place that knows the shape of Temporal's history events. What it returns is
plain data (`ReleaseHistory`) that `pipeline.report.model` makes a report of; it never
needs a worker, so it reads a finished release, a running one, or one whose worker is
gone. A history it cannot read is a `HistoryUnreadable` naming the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from pipeline import search_attributes
from pipeline.local_activities import completed_local_activity

RELEASE_WORKFLOW = "ReleaseWorkflow"

CLOSED = {
    "workflow_execution_completed_event_attributes": "completed",
    "workflow_execution_failed_event_attributes": "failed",
    "workflow_execution_terminated_event_attributes": "terminated",
    "workflow_execution_canceled_event_attributes": "canceled",
    "workflow_execution_timed_out_event_attributes": "timed out",
    "workflow_execution_continued_as_new_event_attributes": "continued as new",
}


class HistoryUnreadable(Exception):
    """The history holds an event this code cannot read (named by id and type)."""


class NotARelease(Exception):
    """The workflow is not a ReleaseWorkflow."""


@dataclass
class ActivityCall:
    """One activity: what it was asked, what it answered (or why it failed), and what
    woke the workflow task that scheduled it ("timer", "activity", "signal", ...).
    A local activity's input is not in history: it is None, and `phase` says which
    phase the release was in (the last one it published) when it ran."""

    event_id: int
    name: str
    at: datetime
    input: Any
    woken_by: frozenset[str]
    ended_at: datetime | None = None
    result: Any = None
    failure: str | None = None
    phase: str | None = None


@dataclass
class Message:
    """A signal or an update a release received; `accepted` is None for a signal
    (the history does not say what the workflow made of it)."""

    event_id: int
    kind: str
    name: str
    at: datetime
    payload: Any
    identity: str
    accepted: bool | None = None
    answer: Any = None


@dataclass
class Timer:
    event_id: int
    at: datetime
    seconds: float
    fired: bool = False


@dataclass
class ReleaseHistory:
    workflow_id: str
    workflow_type: str
    started_at: datetime
    request: Any
    state: str = "running"
    ended_at: datetime | None = None
    result: Any = None
    failure: str | None = None
    activities: list[ActivityCall] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    attributes: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    last_event_at: datetime | None = None
    runs: int = 1
    """A release whose history grew long continued as new: its runs' events, oldest first."""


def decode(payloads: Payloads) -> list[Any]:
    """Payloads as JSON values (the default converter's encoding, as the worker wrote them)."""
    return list(pydantic_data_converter.payload_converter.from_payloads(list(payloads.payloads)))


def first(payloads: Payloads) -> Any:
    values = decode(payloads)
    return values[0] if values else None


def event_time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=timezone.utc)


def failure_text(failure: Any) -> str:
    while failure.HasField("cause"):
        failure = failure.cause
    return failure.message


def read_history(history: WorkflowHistory) -> ReleaseHistory:
    """Every event of `history`, or HistoryUnreadable naming the first one that cannot be read."""
    reader = _Reader()
    for event in history.events:
        try:
            reader.read(event)
        except (NotARelease, HistoryUnreadable):
            raise
        except Exception as error:  # noqa: BLE001 -- any decoding problem names the event
            kind = event.WhichOneof("attributes") or "unknown"
            raise HistoryUnreadable(
                f"event {event.event_id} ({kind.removesuffix('_event_attributes')}) cannot be read: {error}"
            ) from None
    if reader.release is None:
        raise HistoryUnreadable(f"history of {history.workflow_id} has no start event")
    reader.release.workflow_id = history.workflow_id
    return reader.release


class _Reader:
    """Reads one event at a time, pairing activities, updates and timers with their ends."""

    def __init__(self) -> None:
        self.release: ReleaseHistory | None = None
        self.activities: dict[int, ActivityCall] = {}
        self.updates: dict[str, Message] = {}
        self.timers: dict[str, Timer] = {}
        self.woken_by: set[str] = set()
        self.waking: frozenset[str] = frozenset()
        self.phase: str | None = None
        """The last phase the release published (ReleasePhase), for local activities."""

    def read(self, event: HistoryEvent) -> None:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            self._started(event)
            return
        release = self._release(event)
        release.last_event_at = event_time(event)
        handler = getattr(self, "_" + kind.removesuffix("_event_attributes"), None)
        if handler is not None:
            handler(event)
        elif kind in CLOSED:
            self._closed(event, kind)

    def _release(self, event: HistoryEvent) -> ReleaseHistory:
        if self.release is None:
            raise HistoryUnreadable(f"event {event.event_id} comes before the workflow's start event")
        return self.release

    def _started(self, event: HistoryEvent) -> None:
        attributes = event.workflow_execution_started_event_attributes
        if self.release is not None:  # the next run of a release that continued as new
            self.release.runs += 1
            self.release.state, self.release.ended_at = "running", None
            return
        if attributes.workflow_type.name != RELEASE_WORKFLOW:
            raise NotARelease(f"a {attributes.workflow_type.name}, not a {RELEASE_WORKFLOW}")
        self.release = ReleaseHistory(
            workflow_id="",
            workflow_type=attributes.workflow_type.name,
            started_at=event_time(event),
            request=first(attributes.input),
        )

    def _workflow_task_started(self, event: HistoryEvent) -> None:
        self.waking, self.woken_by = frozenset(self.woken_by), set()

    def _activity_task_scheduled(self, event: HistoryEvent) -> None:
        attributes = event.activity_task_scheduled_event_attributes
        call = ActivityCall(
            event.event_id, attributes.activity_type.name, event_time(event), first(attributes.input), self.waking
        )
        self.activities[event.event_id] = call
        self._release(event).activities.append(call)

    def _activity_task_completed(self, event: HistoryEvent) -> None:
        attributes = event.activity_task_completed_event_attributes
        call = self._activity(event, attributes.scheduled_event_id)
        call.ended_at, call.result = event_time(event), first(attributes.result)
        self.woken_by.add("activity")

    def _activity_task_failed(self, event: HistoryEvent) -> None:
        attributes = event.activity_task_failed_event_attributes
        call = self._activity(event, attributes.scheduled_event_id)
        call.ended_at, call.failure = event_time(event), failure_text(attributes.failure)
        self.woken_by.add("activity")

    def _activity_task_timed_out(self, event: HistoryEvent) -> None:
        attributes = event.activity_task_timed_out_event_attributes
        call = self._activity(event, attributes.scheduled_event_id)
        call.ended_at, call.failure = event_time(event), "timed out"
        self.woken_by.add("activity")

    def _activity(self, event: HistoryEvent, scheduled: int) -> ActivityCall:
        if scheduled not in self.activities:
            raise HistoryUnreadable(f"event {event.event_id} ends activity {scheduled}, which was never scheduled")
        return self.activities[scheduled]

    def _workflow_execution_signaled(self, event: HistoryEvent) -> None:
        attributes = event.workflow_execution_signaled_event_attributes
        message = Message(
            event.event_id,
            "signal",
            attributes.signal_name,
            event_time(event),
            decode(attributes.input),
            attributes.identity,
        )
        self._release(event).messages.append(message)
        self.woken_by.add("signal")

    def _workflow_execution_update_accepted(self, event: HistoryEvent) -> None:
        attributes = event.workflow_execution_update_accepted_event_attributes
        request = attributes.accepted_request
        message = Message(
            event.event_id,
            "update",
            request.input.name,
            event_time(event),
            decode(request.input.args),
            request.meta.identity,
        )
        self.updates[request.meta.update_id] = message
        self._release(event).messages.append(message)
        self.woken_by.add("update")

    def _workflow_execution_update_completed(self, event: HistoryEvent) -> None:
        attributes = event.workflow_execution_update_completed_event_attributes
        message = self.updates.get(attributes.meta.update_id)
        if message is None:
            return
        if attributes.outcome.HasField("failure"):
            message.accepted, message.answer = False, failure_text(attributes.outcome.failure)
        else:
            message.accepted, message.answer = True, first(attributes.outcome.success)

    def _marker_recorded(self, event: HistoryEvent) -> None:
        local = completed_local_activity(event)
        if local is None:
            return
        at = event_time(event)
        call = ActivityCall(
            event.event_id, local.activity_type, at, None, self.waking, ended_at=at, result=first(local.result),
            phase=self.phase,
        )
        self._release(event).activities.append(call)

    def _timer_started(self, event: HistoryEvent) -> None:
        attributes = event.timer_started_event_attributes
        timer = Timer(event.event_id, event_time(event), attributes.start_to_fire_timeout.ToTimedelta().total_seconds())
        self.timers[attributes.timer_id] = timer
        self._release(event).timers.append(timer)

    def _timer_fired(self, event: HistoryEvent) -> None:
        timer = self.timers.get(event.timer_fired_event_attributes.timer_id)
        if timer is not None:
            timer.fired = True
        self.woken_by.add("timer")

    def _upsert_workflow_search_attributes(self, event: HistoryEvent) -> None:
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        values = {
            name: pydantic_data_converter.payload_converter.from_payloads([payload])[0]
            for name, payload in fields.items()
        }
        self._release(event).attributes.append((event_time(event), values))
        self.phase = values.get(search_attributes.PHASE.name, self.phase)

    def _closed(self, event: HistoryEvent, kind: str) -> None:
        release = self._release(event)
        release.state, release.ended_at = CLOSED[kind], event_time(event)
        if kind == "workflow_execution_completed_event_attributes":
            release.result = first(event.workflow_execution_completed_event_attributes.result)
        elif kind == "workflow_execution_failed_event_attributes":
            release.failure = failure_text(event.workflow_execution_failed_event_attributes.failure)
