"""What a service lock asks of Temporal itself: is its holder still open."""

from __future__ import annotations

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode


@activity.defn
async def release_state(workflow_id: str) -> str:
    """The status of the latest run of `workflow_id` (RUNNING, COMPLETED, TERMINATED,
    ...), or NOT_FOUND when no such workflow exists any more."""
    try:
        description = await activity.client().get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return "NOT_FOUND"
        raise
    return description.status.name if description.status else "UNKNOWN"
