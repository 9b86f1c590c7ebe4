"""Which traffic change may still be applied. A release numbers its traffic changes;
a change older than the last one applied for the same release is stale: it is an
attempt that outlived a lost worker, and applying it would undo what came after
(a rollback). Changes of another release are not compared: one release at a time
holds the service's lock."""

from __future__ import annotations

from pipeline.models import TrafficFence, TrafficRequest


def is_stale(last: TrafficFence | None, request: TrafficRequest) -> bool:
    return last is not None and last.release_id == request.ref.release_id and request.sequence < last.sequence


def fence_of(request: TrafficRequest) -> TrafficFence:
    return TrafficFence(release_id=request.ref.release_id, sequence=request.sequence)
