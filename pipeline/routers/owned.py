"""What the kubernetes target asks of its traffic routers (Istio, Gateway API), and
the read-modify-write they share.

A cluster router splits a service's traffic between the pods labelled
`track: stable` and `track: canary` by editing one list of a routing object that
the platform team owns (spec.http of a VirtualService, spec.rules of an HTTPRoute).
It rebuilds only the entries it owns and keeps every other entry and field as it
found them. The JSON merge patch carries the resourceVersion it was computed from,
so a concurrent edit makes the API answer 409 and the whole read-modify-write is
retried on a fresh read.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from pipeline.kube import Kube
from pipeline.models import TrafficRequest
from pipeline.routers.traefik import matches

log = structlog.get_logger()


class ClusterRouter(Protocol):
    access: list[tuple[str, str, tuple[str, ...]]]
    """(api group, resource, verbs) this router uses in the production namespace."""

    async def check(self, service: str) -> None:
        """Raise PermanentTargetError unless the routing objects of `service` exist and fit."""

    async def apply(self, service: str, request: TrafficRequest) -> bool:
        """Route `service` as requested. Returns False when the routing already was so."""


class OwnedEntries:
    """Base of the cluster routers: the object `<svc>` of `plural` in `group`/v1, whose
    spec.`field` list the subclass rebuilds in `desired`."""

    router: str
    group: str
    kind: str
    plural: str
    field: str

    def __init__(self, kube: Kube, namespace: str):
        self._kube = kube
        self._namespace = namespace

    def desired(self, service: str, current: list[dict[str, Any]], request: TrafficRequest) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def apply(self, service: str, request: TrafficRequest) -> bool:
        changed = await self._kube.call(
            f"route {self.kind} {self._namespace}/{service}", lambda: self._patch_entries(service, request)
        )
        if changed:
            log.info("traffic.applied", router=self.router, service=service, release_id=request.ref.release_id,
                     canary_weight=request.canary_weight, segments_to_canary=request.segments_to_canary)
        return changed

    async def _read(self, plural: str, kind: str, service: str) -> dict[str, Any]:
        return await self._kube.call(f"read {kind} {self._namespace}/{service}", lambda: self._get(plural, service))

    def _patch_entries(self, service: str, request: TrafficRequest) -> bool:
        live = self._get(self.plural, service)
        current = live.get("spec", {}).get(self.field, [])
        desired = self.desired(service, current, request)
        if matches(desired, current):
            return False
        body = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "spec": {self.field: desired}}
        self._kube.merge_patch_custom(self.group, "v1", self.plural, self._namespace, service, body)
        return True

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        return self._kube.get_custom(self.group, "v1", plural, self._namespace, name)


def router_for(name: str, kube: Kube, namespace: str) -> ClusterRouter:
    if name == "gateway-api":
        from pipeline.routers.gateway_api import GatewayApiRouter

        return GatewayApiRouter(kube, namespace)
    from pipeline.routers.istio import IstioRouter

    return IstioRouter(kube, namespace)


def wants_segments(request: TrafficRequest) -> bool:
    return request.segments_to_canary and bool(request.canary_segments)
