"""Traffic splitting with an Istio VirtualService and DestinationRule.

The VirtualService `<svc>` (hosts, gateways and any other routes belong to the
platform team) gets two routes the router owns, by name:

- `canary-segments`, first and only while segments go to the canary: requests whose
  segment header exactly matches a canary segment go to subset `canary`;
- `primary`: the weighted split between subsets `stable` and `canary` (a subset with
  weight 0 is left out). Fields of an existing `primary` other than `route`
  (timeouts, retries, matches) are kept.

The DestinationRule `<svc>` must define subsets `stable` and `canary` by the `track`
label; the router only reads it, so its traffic policy (sticky sessions through
consistentHash, connection pools) stays the platform team's.

Only spec.http is written, by JSON merge patch carrying the resourceVersion it was
computed from. Istio has no status that confirms a route is pushed to every proxy,
so `apply` returns once the API server has stored it.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import PermanentTargetError
from pipeline.routers.base import Split
from pipeline.routers.owned import OwnedEntries

GROUP = "networking.istio.io"
PRIMARY, SEGMENTS = "primary", "canary-segments"
SUBSETS = ("stable", "canary")


class IstioRouter(OwnedEntries):
    group, kind, plural, field = GROUP, "VirtualService", "virtualservices", "http"
    access = [(GROUP, "virtualservices", ("get", "patch")), (GROUP, "destinationrules", ("get",))]

    async def check(self, service: str) -> None:
        await self._read("virtualservices", "VirtualService", service)
        rule = await self._read("destinationrules", "DestinationRule", service)
        defined = {subset.get("name") for subset in rule.get("spec", {}).get("subsets", [])}
        missing = [subset for subset in SUBSETS if subset not in defined]
        if missing:
            raise PermanentTargetError(
                f"DestinationRule {self._namespace}/{service} lacks subsets {', '.join(missing)} (by label track)"
            )

    def desired(self, service: str, current: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
        return http_routes(service, current, split)


def http_routes(service: str, current: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
    """spec.http routing `split`: the owned routes rebuilt, every other route kept
    between them (the segment route first, the catch-all primary last)."""
    primary = next((route for route in current if route.get("name") == PRIMARY), {"name": PRIMARY})
    shares = (("stable", 100 - split.canary_weight), ("canary", split.canary_weight))
    weighted = [_destination(service, track) | {"weight": weight} for track, weight in shares if weight > 0]
    others = [route for route in current if route.get("name") not in (PRIMARY, SEGMENTS)]
    segments = []
    if split.routes_segments:
        segments = [{
            "name": SEGMENTS,
            "match": [{"headers": {split.segment_header.lower(): {"exact": segment}}}
                      for segment in split.canary_segments],
            "route": [_destination(service, "canary")],
        }]
    return [*segments, *others, {**primary, "route": weighted}]


def _destination(service: str, subset: str) -> dict[str, Any]:
    return {"destination": {"host": service, "subset": subset}}
