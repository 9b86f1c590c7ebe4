"""Activities that read health metrics. Reading never changes anything."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from pipeline.errors import MetricsUnavailable
from pipeline.logging import release_logger
from pipeline.metrics import provider_for
from pipeline.models import Observation, ObserveRequest
from pipeline.telemetry import count_metric_read


@activity.defn
async def observe_metrics(request: ObserveRequest) -> Observation:
    """Metrics of canary and stable since `request.cursor`. A provider that cannot be
    read fails the activity (and Temporal retries it): no data is never healthy."""
    try:
        observation = await heartbeating(provider_for(request).observe(request.ref.service, request.cursor), "reading metrics")
    except MetricsUnavailable as error:
        count_metric_read(request.provider, ok=False)
        raise ApplicationError(f"metrics unavailable: {error}", type="MetricsUnavailable") from error
    count_metric_read(request.provider, ok=True)
    release_logger(request.ref).info(
        "observed",
        window_seconds=round(observation.window_seconds, 2),
        canary_requests=observation.canary.requests,
        canary=observation.canary.values,
    )
    return observation
