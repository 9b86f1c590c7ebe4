"""Canary and stable metrics read from Traefik's own Prometheus endpoint.

There is no Prometheus server locally, so the window arithmetic Prometheus would do
is done here: each observe() scrapes the raw counters, and the cursor it returns is
that snapshot; the next observe() reports the difference. Counters are keyed on the
Traefik services `<svc>-canary@file` and `<svc>-stable@file`, which Traefik counts
separately even though requests reach them through the weighted service.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from functools import cache
from typing import Any

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families

from pipeline.errors import MetricsUnavailable
from pipeline.http import http_client
from pipeline.local.env import LocalEnvironment
from pipeline.models import Metric, Observation, ObserveRequest, VersionMetrics
from pipeline.routers.traefik import canary_service, stable_service

log = structlog.get_logger()

REQUESTS_SAMPLE = "traefik_service_requests_total"
BUCKET_SAMPLE = "traefik_service_request_duration_seconds_bucket"
SCRAPE_TIMEOUT_SECONDS = 5.0

Counters = dict[str, Any]
"""One service's counters: {"requests": n, "errors": n, "buckets": {"<le>": n}}."""


# --- pure computations ---------------------------------------------------------------------


def counter_delta(before: float, after: float) -> float:
    """Increase of a counter between two readings. A counter that went down was
    reset (Traefik restarted) and has counted `after` since, as Prometheus assumes."""
    return after - before if after >= before else after


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative histogram buckets {upper bound: count}, with
    Prometheus' histogram_quantile semantics: linear interpolation inside the bucket
    the rank falls in, and the highest finite bound when it falls in +Inf.
    None when there are no observations (or no +Inf bucket)."""
    if not 0 < q < 1:
        raise ValueError("q must be between 0 and 1")
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    counts = list(itertools.accumulate((buckets[bound] for bound in bounds), max))
    if counts[-1] == 0:
        return None
    rank = q * counts[-1]
    index = bisect.bisect_left(counts, rank)
    if index == len(bounds) - 1:
        return bounds[-2] if len(bounds) > 1 else None
    lower, below = (bounds[index - 1], counts[index - 1]) if index > 0 else (0.0, 0.0)
    return lower + (bounds[index] - lower) * (rank - below) / (counts[index] - below)


def window_metrics(before: Counters, after: Counters) -> VersionMetrics:
    """A version's metrics over the window between two counter snapshots."""
    requests = counter_delta(before.get("requests", 0), after["requests"])
    errors = counter_delta(before.get("errors", 0), after["errors"])
    earlier = before.get("buckets", {})
    buckets = {float(le): counter_delta(earlier.get(le, 0), n) for le, n in after["buckets"].items()}
    p95_seconds = histogram_quantile(0.95, buckets) if requests else None
    return VersionMetrics(
        requests=int(requests),
        values={
            Metric.ERROR_RATE: min(errors / requests, 1.0) if requests else None,
            Metric.P95_LATENCY_MS: None if p95_seconds is None else p95_seconds * 1000,
        },
    )


def read_counters(exposition: str, services: dict[str, str]) -> dict[str, Counters]:
    """Sum Traefik's per-service samples (over codes, methods, protocols) for each
    role in `services` ({role: traefik service name})."""
    counters: dict[str, Counters] = {role: {"requests": 0.0, "errors": 0.0, "buckets": {}} for role in services}
    role_of = {name: role for role, name in services.items()}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            role = role_of.get(sample.labels.get("service", ""))
            if role is None:
                continue
            if sample.name == REQUESTS_SAMPLE:
                counters[role]["requests"] += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    counters[role]["errors"] += sample.value
            elif sample.name == BUCKET_SAMPLE:
                buckets = counters[role]["buckets"]
                buckets[sample.labels["le"]] = buckets.get(sample.labels["le"], 0.0) + sample.value
    return counters


# --- the provider --------------------------------------------------------------------------


class TraefikMetrics:
    def __init__(self, env: LocalEnvironment | None = None):
        self._metrics_url = f"{(env or LocalEnvironment.from_env()).admin_url}/metrics"

    async def observe(self, service: str, cursor: dict[str, Any]) -> Observation:
        now = time.time()
        counters = await self._scrape(
            {"canary": f"{canary_service(service)}@file", "stable": f"{stable_service(service)}@file"}
        )
        earlier = cursor.get("counters") or counters  # no cursor: an empty window
        observation = Observation(
            window_seconds=round(now - cursor.get("taken_at", now), 3),
            canary=window_metrics(earlier["canary"], counters["canary"]),
            stable=window_metrics(earlier["stable"], counters["stable"]),
            cursor={"taken_at": now, "counters": counters},
        )
        log.info("metrics.observed", service=service, window_seconds=observation.window_seconds,
                 canary_requests=observation.canary.requests, stable_requests=observation.stable.requests)
        return observation

    async def _scrape(self, services: dict[str, str]) -> dict[str, Counters]:
        try:
            async with http_client(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
                response = await client.get(self._metrics_url)
                response.raise_for_status()
            return read_counters(response.text, services)
        except (httpx.HTTPError, ValueError) as error:
            raise MetricsUnavailable(f"cannot read Traefik metrics at {self._metrics_url}: {error!r}") from error


def for_request(request: ObserveRequest) -> TraefikMetrics:
    """The provider for a release (pipeline/catalog.py): one per worker, on its own
    local environment."""
    return _worker_traefik()


@cache
def _worker_traefik() -> TraefikMetrics:
    return TraefikMetrics(LocalEnvironment.from_env())
