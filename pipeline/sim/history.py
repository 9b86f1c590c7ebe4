"""A past release's history, read for replay: the request it started with, the metric
windows its `observe_metrics` reads returned (activities or local activities), in order, and how it ended. The
simulator (`releasectl simulate --from-history`) serves those windows back to the
workflow in the same order (pipeline/metrics/sim.py), so its analyses judge what the
real release's judged and reach the same verdicts; a changed policy in the request
file is judged against the same windows.

A window the real release could not read (the activity failed or timed out) is
replayed as the empty window the workflow used in its place. Only the run the id
names is read: a release that continued as new is replayed from its last run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from pipeline.local_activities import completed_local_activity
from pipeline.models import Observation, ReleaseResult, VersionMetrics

RELEASE_WORKFLOW = "ReleaseWorkflow"
OBSERVE_ACTIVITY = "observe_metrics"
_UNREAD = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
}


class HistoryError(ValueError):
    """A history that cannot be replayed, with a message naming why."""


@dataclass(frozen=True)
class RecordedRelease:
    release_id: str
    request: dict[str, Any]
    """The workflow input as recorded (raw JSON, validated later like any request)."""
    observations: list[Observation]
    result: ReleaseResult | None
    """How the release ended; None while it runs or when it did not complete."""


async def fetch_release_history(client: Client, release_id: str) -> WorkflowHistory:
    try:
        return await client.get_workflow_handle(release_id).fetch_history()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise HistoryError(f"no release {release_id!r} in namespace {client.namespace}") from None
        raise


def recorded_release(history: WorkflowHistory) -> RecordedRelease:
    events = list(history.events)
    if not events or not events[0].HasField("workflow_execution_started_event_attributes"):
        raise HistoryError(f"the history of {history.workflow_id!r} has no start event")
    started = events[0].workflow_execution_started_event_attributes
    if started.workflow_type.name != RELEASE_WORKFLOW:
        raise HistoryError(f"{history.workflow_id!r} is a {started.workflow_type.name}, not a release")
    request = _decode(started.input.payloads[:1], dict) if started.input.payloads else None
    if not isinstance(request, dict) or not request.get("version") or request.get("revert"):
        raise HistoryError(f"{history.workflow_id!r} is not a release of a version (a revert, or an invalid request)")
    return RecordedRelease(history.workflow_id, request, _observations(events), _result(events))


def _observations(events: list[Any]) -> list[Observation]:
    observe_ids = {
        event.event_id
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == OBSERVE_ACTIVITY
    }
    observations = []
    for event in events:
        local = completed_local_activity(event)
        if local is not None and local.activity_type == OBSERVE_ACTIVITY:
            observations.append(_decode(local.result.payloads, Observation))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            if completed.scheduled_event_id in observe_ids:
                observations.append(_decode(completed.result.payloads, Observation))
        elif event.event_type in _UNREAD:
            if getattr(event, _UNREAD[event.event_type]).scheduled_event_id in observe_ids:
                observations.append(Observation(window_seconds=0, canary=VersionMetrics(), stable=VersionMetrics()))
    return observations


def _result(events: list[Any]) -> ReleaseResult | None:
    last = events[-1]
    if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return None
    return _decode(last.workflow_execution_completed_event_attributes.result.payloads, ReleaseResult)


def _decode(payloads: Any, kind: type) -> Any:
    [value] = pydantic_data_converter.payload_converter.from_payloads(list(payloads), [kind])
    return value
