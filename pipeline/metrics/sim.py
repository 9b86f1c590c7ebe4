"""Canary and stable metrics of the sim target, drawn from its model
(pipeline/sim/model.py) over the window since the cursor was taken, in release time
(pipeline/sim/fleet.py). Like the Traefik provider, the first call (no cursor) opens
an empty window. The window is drawn with the routing and versions in place when it
is read: the workflow opens a new window after each traffic change, so they held for
all of it. Raw samples come with it, so the baseline comparison can use it. A fleet
replaying a past release (pipeline/sim/history.py) returns its recorded windows instead."""

from __future__ import annotations

from typing import Any

import structlog

from pipeline.models import Observation, ObserveRequest, Slot
from pipeline.sim.fleet import Fleet, worker_fleet
from pipeline.sim.measure import version_metrics
from pipeline.sim.model import serve_window

log = structlog.get_logger()


class SimMetrics:
    def __init__(self, fleet: Fleet, request: ObserveRequest):
        self._fleet = fleet
        self._request = request

    async def observe(self, service: str, cursor: dict[str, Any]) -> Observation:
        replayed = self._fleet.replayed(service)
        if replayed is not None:
            return replayed
        now = self._request.at.timestamp() if self._request.at else self._fleet.now()
        start = float(cursor.get("taken_at", now))
        state = self._fleet.service(service)
        served = serve_window(
            f"{self._fleet.scenario.seed}|{service}",
            start,
            now,
            state.routing,
            self._fleet.scenario.traffic,
            stable=state.running(Slot.STABLE),
            canary=state.running(Slot.CANARY),
        )
        request = self._request
        tracks = {
            track: version_metrics(requests, request.metrics, request.sampled, start, request.sample_seconds)
            for track, requests in served.items()
        }
        log.info("metrics.observed", provider="sim", service=service, window_seconds=round(now - start, 3),
                 canary_requests=tracks["canary"].requests, stable_requests=tracks["stable"].requests)
        return Observation(window_seconds=round(now - start, 3), cursor={"taken_at": now}, **tracks)


def for_request(request: ObserveRequest) -> SimMetrics:
    """The provider for a release (pipeline/catalog.py), on this worker's fleet."""
    return SimMetrics(worker_fleet(), request)
