"""The timeline line each activity of a release's history makes (if any)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from pipeline.report.history import ActivityCall


class Event(BaseModel):
    at: datetime
    kind: str
    text: str


DESCRIBE: dict[str, Callable[[Any, Any], str]] = {
    "preflight": lambda request, result: f"preflight: stable is {result.get('stable_version') or 'none'}",
    "deploy_version": lambda request, result: f"deployed {request['version']} to {request['slot']}",
    "wait_ready": lambda request, result: f"{request['slot']} {request['version']} ready",
    "run_test_suite": lambda request, result: (
        f"suite {result['suite']} {'passed' if result['passed'] else 'FAILED'} in {result['duration_seconds']:.1f}s"
    ),
    "set_traffic": lambda request, result: f"{request['canary_weight']}% of traffic on the new version",
    "stop_version": lambda request, result: f"stopped {request['slot']}",
    "promote_version": lambda request, result: f"promoted (replaced {result or 'nothing'})",
    "promote_canary": lambda request, result: f"promoted (replaced {result or 'nothing'})",
    "retire_version": lambda request, result: f"retired {request['version']}",
    "revert_version": lambda request, result: f"reverted to {request['version']}",
    "version_health": lambda request, result: (
        f"health of {result['version']}: {'healthy' if result['healthy'] else 'UNHEALTHY'} ({result['detail']})"
    ),
    "migrate": lambda request, result: "schema migration run",
}
"""Activities worth a line, and the line; gates and analyses have their own (see model)."""


def activity_event(call: ActivityCall) -> Event | None:
    describe = DESCRIBE.get(call.name)
    if describe is None:
        return None
    at = call.ended_at or call.at
    if call.failure is not None:
        return Event(at=at, kind="failure", text=f"{call.name} failed: {call.failure}")
    if call.ended_at is None:
        return Event(at=at, kind="activity", text=f"{call.name} running")
    try:
        return Event(at=at, kind="activity", text=describe(call.input, call.result))
    except (KeyError, TypeError, AttributeError):
        return Event(at=at, kind="activity", text=f"{call.name} done")
