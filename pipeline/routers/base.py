"""The traffic-router interface: how a deploy target splits a service's traffic
between its stable and canary versions."""

from __future__ import annotations

from typing import Protocol

from pipeline.models import TrafficRequest


class TrafficRouter(Protocol):
    async def apply(
        self, service: str, stable_url: str | None, canary_url: str | None, request: TrafficRequest
    ) -> bool:
        """Route `service` as requested between the two URLs and return once the router
        serves it. Returns False when the routing already was so."""
