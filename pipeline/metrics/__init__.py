"""Metrics providers: where a release's health is read from.

The release's policy names the provider (`policy.metrics_provider`); without one,
the target's default is used (Traefik's own counters on the local target).
"""

from __future__ import annotations

from functools import cache

from pipeline.metrics.base import MetricsProvider
from pipeline.models import DEFAULT_METRICS_PROVIDER, PROVIDER_TARGETS, ObserveRequest
from pipeline.targets.base import PermanentTargetError


def provider_for(request: ObserveRequest) -> MetricsProvider:
    name = request.provider or DEFAULT_METRICS_PROVIDER.get(request.ref.target)
    if name is None or request.ref.target not in PROVIDER_TARGETS[name]:
        raise PermanentTargetError(f"no metrics provider {name!r} for target {request.ref.target!r} on this worker")
    if name == "prometheus":
        from pipeline.metrics.prometheus import MetricsQuery, PrometheusMetrics

        return PrometheusMetrics(
            MetricsQuery(
                metrics=request.metrics,
                queries=request.queries,
                sampled=request.sampled,
                sample_seconds=request.sample_seconds,
                namespace=request.namespace,
                versions={"canary": request.canary_version, "stable": request.stable_version},
            )
        )
    return _local_traefik()


@cache
def _local_traefik() -> MetricsProvider:
    from pipeline.local.env import LocalEnvironment
    from pipeline.metrics.traefik import TraefikMetrics

    return TraefikMetrics(LocalEnvironment.from_env())
