"""Traffic splitting with a Gateway API HTTPRoute.

The HTTPRoute `<svc>` (parentRefs, hostnames and other rules belong to the platform
team) sends traffic to the Services `<svc>-stable` and `<svc>-canary`, which select
pods by the `track` label. The router owns two rules, known by their backends:

- the segment rule, first and only while segments go to the canary: requests whose
  segment header exactly matches a canary segment go to `<svc>-canary` alone;
- the primary rule, the one with a `<svc>-stable` backend: weighted backendRefs to
  both Services, weight 0 included (the stable backend marks the rule). Its other fields (matches,
  filters, timeouts) and the backends' port are kept.

Only spec.rules is written, by JSON merge patch carrying the resourceVersion it was
computed from.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import PermanentTargetError
from pipeline.routers.base import Split
from pipeline.routers.owned import OwnedEntries

GROUP = "gateway.networking.k8s.io"
DEFAULT_PORT = 80


class GatewayApiRouter(OwnedEntries):
    group, kind, plural, field = GROUP, "HTTPRoute", "httproutes", "rules"
    access = [(GROUP, "httproutes", ("get", "patch"))]

    async def check(self, service: str) -> None:
        route = await self._read("httproutes", "HTTPRoute", service)
        if _primary(service, route.get("spec", {}).get("rules", [])) is None:
            raise PermanentTargetError(
                f"HTTPRoute {self._namespace}/{service} has no rule with backend {service}-stable"
            )

    def desired(self, service: str, current: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
        return route_rules(service, current, split)


def route_rules(service: str, current: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
    """spec.rules routing `split`: the owned rules rebuilt, every other rule kept
    between them (the segment rule first, the primary rule last)."""
    primary = _primary(service, current) or {}
    port = next((ref.get("port") for ref in primary.get("backendRefs", []) if ref.get("port")), DEFAULT_PORT)
    others = [rule for rule in current if rule is not primary and not _is_segment_rule(service, rule)]
    segments = []
    if split.routes_segments:
        segments = [{
            "matches": [{"headers": [{"type": "Exact", "name": split.segment_header, "value": segment}]}
                        for segment in split.canary_segments],
            "backendRefs": [{"name": f"{service}-canary", "port": port}],
        }]
    weighted = [{"name": f"{service}-{track}", "port": port, "weight": weight}
                for track, weight in (("stable", 100 - split.canary_weight), ("canary", split.canary_weight))]
    return [*segments, *others, {**primary, "backendRefs": weighted}]


def _primary(service: str, rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next(
        (rule for rule in rules if any(ref.get("name") == f"{service}-stable" for ref in rule.get("backendRefs", []))),
        None,
    )


def _is_segment_rule(service: str, rule: dict[str, Any]) -> bool:
    backends = [ref.get("name") for ref in rule.get("backendRefs", [])]
    return backends == [f"{service}-canary"] and bool(rule.get("matches"))
