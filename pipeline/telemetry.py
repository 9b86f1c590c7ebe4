"""The worker's Prometheus metrics: the Temporal SDK's runtime metrics (task latencies,
schedule-to-start, slots, poll results) and the pipeline's own, on one endpoint.

  WORKER_METRICS_ADDRESS   host:port the worker serves /metrics on, e.g. 0.0.0.0:9464.
                           Unset: no metrics endpoint (a worker opens no port it was
                           not asked to).

The pipeline's metrics go through the SDK's meter (`workflow.metric_meter()` in
workflow code, which records nothing while a workflow replays and adds no commands;
`activity.metric_meter()` in activities), so the one Runtime below serves them all.
Their names are here, in one table, so that the dashboard, the README and the test
agree with what is emitted. Labels stay bounded: service, outcome, phase, metric,
verdict, kind, cause, stage, gate; never a release id.
"""

from __future__ import annotations

import os

from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from pipeline.models import Phase

ADDRESS_ENV = "WORKER_METRICS_ADDRESS"
RELEASE_WORKFLOW = "ReleaseWorkflow"

STARTED = "release_started"
"""Counter (exported as release_started_total){service}: releases started (a continued run is not a new one)."""
ENDED = "release_ended"
"""Counter (release_ended_total){service, outcome}: releases finished, by outcome."""
PHASE = "release_phase"
"""Gauge{service, phase}: 1 for the phase a service's release is in, 0 for the one it left."""
CANARY_WEIGHT = "release_canary_weight_percent"
"""Gauge{service}: the share of traffic (0-100) on the new version."""
ANALYSES = "release_analyses"
"""Counter (release_analyses_total){service, phase, verdict}: analyses and their overall verdict."""
CHECKS = "release_analysis_checks"
"""Counter (release_analysis_checks_total){service, metric, kind, verdict}: each metric's
verdict in each analysis; kind is threshold or baseline."""
ROLLBACKS = "release_rollbacks"
"""Counter (release_rollbacks_total){service, cause}: rollbacks by cause (breach, analysis,
kill_switch, reject, cancel, expiry, bake, failure; orphaned: by the service's lock, for
a release that died holding it)."""
TIME_TO_STABLE = "release_breach_to_stable_seconds"
"""Histogram{service}: from the stop (the analysis that breached, the kill switch
order, or the rollback's start) until no traffic reaches the new version."""
APPROVAL_WAIT = "release_approval_wait_seconds"
"""Histogram{service, stage}: how long a stage waited for its approvals."""
GATE_HOLDS = "release_gate_holds"
"""Counter (release_gate_holds_total){service, gate}: production changes held by a gate
(each new reason counts once)."""
GATE_HELD = "release_gate_held"
"""Gauge{service, gate}: 1 while a gate holds the service's release."""
METRIC_READS = "release_metric_reads"
"""Counter (release_metric_reads_total){provider, result}: reads of a metrics provider by
the observe activity (result ok or error)."""

BUCKETS: dict[str, list[float]] = {
    TIME_TO_STABLE: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    APPROVAL_WAIT: [10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600],
}


def metrics_address() -> str | None:
    return os.environ.get(ADDRESS_ENV) or None


class MetricsConfigError(ValueError):
    """The metrics address cannot be served (bad syntax, port taken): the worker does not start."""


def serve_metrics(address: str) -> None:
    """Make every client and worker created from now on report to a Prometheus endpoint
    on `address`. Call before the worker's client connects."""
    try:
        runtime = Runtime(telemetry=telemetry_config(address))
    except Exception as error:  # the SDK's core raises ValueError or RuntimeError from Rust
        raise MetricsConfigError(f"{ADDRESS_ENV}={address!r}: {error}") from None
    Runtime.set_default(runtime, error_if_already_set=False)


def telemetry_config(address: str) -> TelemetryConfig:
    """Counters end in _total and the SDK's durations are seconds with the unit in their
    name (temporal_workflow_task_schedule_to_start_latency_seconds), as Prometheus
    conventions ask; the pipeline's histograms get buckets that fit what they measure."""
    return TelemetryConfig(
        metrics=PrometheusConfig(
            bind_address=address,
            counters_total_suffix=True,
            unit_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides=BUCKETS,
        )
    )


def serve_metrics_from_env() -> str | None:
    """Serve metrics where WORKER_METRICS_ADDRESS says; returns that address, or None
    when it is unset."""
    address = metrics_address()
    if address is not None:
        serve_metrics(address)
    return address


def show_phase(meter: MetricMeter, service: str, current: Phase) -> None:
    """1 for `current`, 0 for every other phase: the last release of a service may
    have left any of them at 1."""
    gauge = meter.create_gauge(PHASE)
    for phase in Phase:
        gauge.set(int(phase is current), {"service": service, "phase": phase.value})


def count_orphaned_rollback(service: str) -> None:
    """From a service's lock workflow: its holder died holding it (terminated, timed out,
    failed in its rollback) and the lock rolled the service back in its place. Recorded
    as the release's own series (workflow_type ReleaseWorkflow), which the release set
    at 0 when it started: increase() sees the rollback, and the dead release's phase
    and weight do not stay on the dashboard."""
    meter = workflow.metric_meter().with_additional_attributes({"workflow_type": RELEASE_WORKFLOW})
    meter.create_counter(ROLLBACKS).add(1, {"service": service, "cause": "orphaned"})
    meter.create_gauge(CANARY_WEIGHT).set(0, {"service": service})
    show_phase(meter, service, Phase.DONE)


def count_metric_read(provider: str | None, ok: bool) -> None:
    """From an activity: one read of a metrics provider and whether it answered."""
    activity.metric_meter().create_counter(METRIC_READS).add(
        1, {"provider": provider or "default", "result": "ok" if ok else "error"}
    )
