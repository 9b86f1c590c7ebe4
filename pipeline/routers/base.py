"""The traffic-router interface: how a deploy target splits a service's traffic
between its stable and canary versions. One module per implementation (traefik,
istio, gateway_api), built by name through pipeline/routers/__init__.py's
`router_for` from the adapter catalog (pipeline/catalog.py).

A router takes a `Split`, a plain routing spec: the target translates its
TrafficRequest (or, in promote, its own intent) into one. Routers import this module
and pipeline/errors.py, never one another; what two routers share lives here or in a
neutral module (pipeline/routers/owned.py for the cluster routers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Split:
    """How one service's traffic is split between its stable and canary versions."""

    canary_weight: int = 0
    """Percent of ordinary traffic on the canary."""
    segments_to_canary: bool = False
    """Whether requests of the canary segments all go to the canary."""
    segment_header: str = ""
    canary_segments: tuple[str, ...] = ()
    """Values of `segment_header` whose requests go to the canary while segments_to_canary."""
    stable_url: str | None = None
    canary_url: str | None = None
    """The backends, for routers that address processes (Traefik); cluster routers
    address the `track` Services or subsets by name and ignore them."""

    @property
    def routes_segments(self) -> bool:
        """Whether a segment route sends some requests to the canary."""
        return self.segments_to_canary and bool(self.canary_segments)

    @property
    def needs_canary(self) -> bool:
        return self.canary_weight > 0 or self.routes_segments


class TrafficRouter(Protocol):
    async def check(self, service: str) -> None:
        """Raise PermanentTargetError unless this router can serve `service` here
        (its binary present, its routing objects installed and fit)."""

    async def apply(self, service: str, split: Split) -> bool:
        """Route `service` as `split` says and return once the router serves it.
        Returns False when the routing already was so."""


def matches(desired: Any, live: Any) -> bool:
    """Whether everything `desired` says is in `live` (an API may add defaults)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and matches(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(matches, desired, live))
    return desired == live
