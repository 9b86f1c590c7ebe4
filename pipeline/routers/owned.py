"""The read-modify-write the cluster routers (Istio, Gateway API) share.

A cluster router splits a service's traffic between the pods labelled
`track: stable` and `track: canary` by editing one list of a routing object that
the platform team owns (spec.http of a VirtualService, spec.rules of an HTTPRoute).
It rebuilds only the entries it owns and keeps every other entry and field as it
found them. The JSON merge patch carries the resourceVersion it was computed from,
so a concurrent edit makes the API answer 409 and the whole read-modify-write is
retried on a fresh read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pipeline.kube import Kube
from pipeline.routers.base import Split, matches


class OwnedEntries:
    """Base of the cluster routers: the object `<svc>` of `plural` in `group`/v1, whose
    spec.`field` list the subclass rebuilds in `desired`."""

    group: ClassVar[str]
    kind: ClassVar[str]
    plural: ClassVar[str]
    field: ClassVar[str]
    access: ClassVar[list[tuple[str, str, tuple[str, ...]]]]
    """(api group, resource, verbs) this router uses in the production namespace."""

    def __init__(self, kube: Kube, namespace: str):
        self._kube = kube
        self._namespace = namespace

    async def check(self, service: str) -> None:
        raise NotImplementedError

    def desired(self, service: str, current: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def apply(self, service: str, split: Split) -> bool:
        return await self._kube.call(
            f"route {self.kind} {self._namespace}/{service}", lambda: self._patch_entries(service, split)
        )

    async def _read(self, plural: str, kind: str, service: str) -> dict[str, Any]:
        return await self._kube.call(f"read {kind} {self._namespace}/{service}", lambda: self._get(plural, service))

    def _patch_entries(self, service: str, split: Split) -> bool:
        live = self._get(self.plural, service)
        current = live.get("spec", {}).get(self.field, [])
        desired = self.desired(service, current, split)
        if matches(desired, current):
            return False
        body = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "spec": {self.field: desired}}
        self._kube.merge_patch_custom(self.group, "v1", self.plural, self._namespace, service, body)
        return True

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        return self._kube.get_custom(self.group, "v1", plural, self._namespace, name)
