"""The window arithmetic of TraefikMetrics: counter deltas, resets, quantiles."""

import math

import pytest

from pipeline.metrics.traefik import counter_delta, histogram_quantile, read_counters, window_metrics
from pipeline.models import Metric

INF = math.inf


def counters(requests: float, errors: float, buckets: dict[str, float]) -> dict:
    return {"requests": requests, "errors": errors, "buckets": buckets}


def test_counter_delta_is_the_increase():
    assert counter_delta(10, 25) == 15
    assert counter_delta(7, 7) == 0


def test_counter_that_went_down_was_reset_and_counts_from_zero():
    assert counter_delta(100, 4) == 4


def test_quantile_interpolates_linearly_within_the_bucket():
    # 100 observations: 50 up to 0.1 s, 50 more up to 0.5 s. Rank 95 is 45/50 into (0.1, 0.5].
    assert histogram_quantile(0.95, {0.1: 50, 0.5: 100, INF: 100}) == pytest.approx(0.1 + 0.4 * 45 / 50)


def test_quantile_in_the_first_bucket_starts_from_zero():
    assert histogram_quantile(0.5, {0.2: 10, 1.0: 10, INF: 10}) == pytest.approx(0.1)


def test_quantile_beyond_the_last_finite_bucket_is_that_bound():
    assert histogram_quantile(0.95, {0.1: 1, 0.5: 2, INF: 100}) == 0.5


def test_quantile_of_no_observations_is_none():
    assert histogram_quantile(0.95, {0.1: 0, INF: 0}) is None
    assert histogram_quantile(0.95, {}) is None


def test_quantile_tolerates_non_monotonic_buckets_like_prometheus():
    # A reset seen by one bucket only can make a delta dip; counts are made monotonic.
    assert histogram_quantile(0.5, {0.1: 10, 0.5: 4, INF: 10}) == pytest.approx(0.05)


def test_window_reports_requests_error_rate_and_p95_in_ms():
    before = counters(100, 1, {"0.1": 90, "0.5": 100, "+Inf": 100})
    after = counters(200, 11, {"0.1": 140, "0.5": 200, "+Inf": 200})
    window = window_metrics(before, after)
    assert window.requests == 100
    assert window.values[Metric.ERROR_RATE] == pytest.approx(0.10)
    assert window.values[Metric.P95_LATENCY_MS] == pytest.approx((0.1 + 0.4 * 45 / 50) * 1000)


def test_empty_window_has_no_values():
    snapshot = counters(50, 5, {"0.1": 50, "+Inf": 50})
    window = window_metrics(snapshot, snapshot)
    assert window.requests == 0
    assert window.values == {Metric.ERROR_RATE: None, Metric.P95_LATENCY_MS: None}


def test_window_across_a_traefik_restart_counts_since_the_restart():
    before = counters(1000, 0, {"0.1": 1000, "+Inf": 1000})
    after = counters(20, 10, {"0.1": 20, "+Inf": 20})
    window = window_metrics(before, after)
    assert window.requests == 20
    assert window.values[Metric.ERROR_RATE] == pytest.approx(0.5)


def test_window_from_a_snapshot_without_the_service_counts_everything():
    window = window_metrics({}, counters(8, 2, {"0.1": 8, "+Inf": 8}))
    assert window.requests == 8
    assert window.values[Metric.ERROR_RATE] == pytest.approx(0.25)


EXPOSITION = """\
# HELP traefik_service_requests_total How many HTTP requests processed on a service.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="g-canary@file"} 6
traefik_service_requests_total{code="500",method="GET",protocol="http",service="g-canary@file"} 4
traefik_service_requests_total{code="201",method="POST",protocol="http",service="g-stable@file"} 3
traefik_service_requests_total{code="200",method="GET",protocol="http",service="other-canary@file"} 99
# HELP traefik_service_request_duration_seconds How long it took to process the request on a service.
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="g-canary@file",le="0.1"} 6
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="g-canary@file",le="+Inf"} 6
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="g-canary@file",le="0.1"} 3
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="g-canary@file",le="+Inf"} 4
traefik_service_request_duration_seconds_sum{code="500",method="GET",protocol="http",service="g-canary@file"} 0.9
traefik_service_request_duration_seconds_count{code="500",method="GET",protocol="http",service="g-canary@file"} 4
"""


def test_read_counters_sums_series_per_service_and_counts_5xx_as_errors():
    read = read_counters(EXPOSITION, {"canary": "g-canary@file", "stable": "g-stable@file"})
    assert read["canary"] == counters(10, 4, {"0.1": 9, "+Inf": 10})
    assert read["stable"] == counters(3, 0, {})
