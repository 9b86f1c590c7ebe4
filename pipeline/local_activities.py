"""Local activities as a workflow history records them.

A release runs its short reads (metrics, the calendar, live activity, the gates file)
as local activities (`_quick_read` in workflows/release/calls.py). Each is one
`MARKER_RECORDED` event named `core_local_activity`: its details hold the activity's
type and result, not its input. A local read that failed is always followed by the
same read as an ordinary activity, so readers of history skip failed ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType

LOCAL_ACTIVITY_MARKER = "core_local_activity"


@dataclass(frozen=True)
class LocalActivity:
    """A local activity that completed: its type, when the workflow asked for it, and
    its result's payloads."""

    activity_type: str
    scheduled_at: datetime
    result: Payloads


def completed_local_activity(event: Any) -> LocalActivity | None:
    """The local activity `event` records, or None when it records none or one that failed."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or marker.HasField("failure") or "result" not in marker.details:
        return None
    data = json.loads(marker.details["data"].payloads[0].data)
    scheduled = data.get("original_schedule_time") or {}
    return LocalActivity(
        activity_type=data["activity_type"],
        scheduled_at=datetime.fromtimestamp(scheduled.get("seconds", 0) + scheduled.get("nanos", 0) / 1e9, timezone.utc),
        result=marker.details["result"],
    )


def scheduled_activities(events: Iterable[Any]) -> list[tuple[str, datetime]]:
    """The activities a history ran, in order, each with when the workflow asked for it:
    every ordinary one scheduled, every local one that completed."""
    scheduled = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled.append((name, event.event_time.ToDatetime(tzinfo=timezone.utc)))
        elif (local := completed_local_activity(event)) is not None:
            scheduled.append((local.activity_type, local.scheduled_at))
    return scheduled
