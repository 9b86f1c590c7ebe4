"""Metrics providers: where a release's health is read from, by name from the
adapter catalog (pipeline/catalog.py).

The release's policy names the provider (`policy.metrics_provider`); without one,
the target's default is used (Traefik's own counters on the local target).
"""

from __future__ import annotations

from pipeline.catalog import METRICS_PROVIDERS, TARGETS
from pipeline.errors import PermanentTargetError
from pipeline.metrics.base import MetricsProvider
from pipeline.models import ObserveRequest


def provider_for(request: ObserveRequest) -> MetricsProvider:
    target = request.ref.target
    name = request.provider or (TARGETS[target].metrics_provider if target in TARGETS else None)
    entry = METRICS_PROVIDERS.get(name) if name else None
    if entry is None or target not in entry.targets:
        raise PermanentTargetError(f"no metrics provider {name!r} for target {target!r} on this worker")
    return entry.build(request)
