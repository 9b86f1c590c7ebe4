"""Metrics providers by target: where a release's health is read from."""

from __future__ import annotations

from functools import cache

from pipeline.metrics.base import MetricsProvider
from pipeline.targets.base import PermanentTargetError


@cache
def provider_for(target: str) -> MetricsProvider:
    if target == "local":
        from pipeline.localenv import LocalEnvironment
        from pipeline.metrics.traefik import TraefikMetrics

        return TraefikMetrics(LocalEnvironment.from_env())
    raise PermanentTargetError(f"no metrics provider for target {target!r} on this worker")
