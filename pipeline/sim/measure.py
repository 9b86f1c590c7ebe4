"""What a metrics provider would measure of simulated requests: a version's metrics
over a window, in the shape every provider returns (pipeline/models/analysis.py), with
raw samples at `sample_seconds` resolution for the baseline comparison. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from pipeline.models import Metric, VersionMetrics
from pipeline.sim.model import Served

UNMODELLED = "the sim target does not model this metric"


def error_rate(served: list[Served]) -> float | None:
    return sum(request.failed for request in served) / len(served) if served else None


def availability(served: list[Served]) -> float | None:
    rate = error_rate(served)
    return None if rate is None else 1.0 - rate


def p95_latency_ms(served: list[Served]) -> float | None:
    """The nearest-rank 95th percentile of the requests' latencies."""
    if not served:
        return None
    latencies = sorted(request.latency_ms for request in served)
    return latencies[max(math.ceil(0.95 * len(latencies)) - 1, 0)]


MEASURES: dict[Metric, Callable[[list[Served]], float | None]] = {
    Metric.ERROR_RATE: error_rate,
    Metric.P95_LATENCY_MS: p95_latency_ms,
    Metric.GALLERY_AVAILABILITY: availability,
}


def version_metrics(
    served: list[Served], metrics: Iterable[Metric], sampled: Iterable[Metric], start: float, sample_seconds: int
) -> VersionMetrics:
    """`metrics` (the modelled ones always included) over all of `served`, and the
    `sampled` ones per `sample_seconds` slice of the window from `start`."""
    wanted = list(dict.fromkeys([*MEASURES, *metrics]))
    values = {metric: MEASURES[metric](served) if metric in MEASURES else None for metric in wanted}
    missing = {metric: _why_missing(metric, served) for metric, value in values.items() if value is None}
    slices = _slices(served, start, sample_seconds)
    samples = {
        metric: [value for part in slices if (value := MEASURES[metric](part)) is not None]
        for metric in sampled
        if metric in MEASURES
    }
    return VersionMetrics(requests=len(served), values=values, missing=missing, samples=samples)


def _why_missing(metric: Metric, served: list[Served]) -> str:
    return "no requests in the window" if metric in MEASURES and not served else UNMODELLED


def _slices(served: list[Served], start: float, seconds: int) -> list[list[Served]]:
    """`served` cut into consecutive `seconds`-long slices from `start`, empty ones left out."""
    slices: dict[int, list[Served]] = {}
    for request in served:
        slices.setdefault(int((request.at - start) // seconds), []).append(request)
    return [slices[index] for index in sorted(slices)]
