"""The metrics-provider interface: each version's health over an analysis window.

A provider is asked for one window at a time. `cursor` is what the previous call
returned (empty on the first call) and lets a provider that reads raw counters
compute the difference over the window; providers that query over a time range
(Prometheus) may ignore it.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipeline.models import Observation


class MetricsProvider(Protocol):
    async def observe(self, service: str, cursor: dict[str, Any]) -> Observation:
        """Metrics of the canary and the stable version since `cursor` was taken.
        Raises MetricsUnavailable (pipeline/errors.py) when it cannot be read."""
