"""The sim target's router: it routes in the worker's fleet (pipeline/sim/fleet.py),
where the metrics provider's model reads the split for each request it draws."""

from __future__ import annotations

from pipeline.routers.base import Split
from pipeline.sim.fleet import Fleet
from pipeline.sim.model import Routing


class SimRouter:
    def __init__(self, fleet: Fleet):
        self._fleet = fleet

    async def check(self, service: str) -> None:
        """Every service can be routed in memory."""

    async def apply(self, service: str, split: Split) -> bool:
        state = self._fleet.service(service)
        routing = Routing(canary_weight=split.canary_weight, segments_to_canary=split.routes_segments)
        changed, state.routing = state.routing != routing, routing
        return changed
