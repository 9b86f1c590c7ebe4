"""Rates of counted events judged as proportions with Fisher's exact test, and the
rule that picks it over Mann-Whitney."""

from __future__ import annotations

import math

import pytest

from pipeline.decisions.baseline import compare_proportions, judge_baseline
from pipeline.models import BaselinePolicy, Comparison, Direction, Metric, Observation, Verdict, VersionMetrics


def counts(rate: float | None, requests: int, metric: Metric = Metric.ERROR_RATE) -> VersionMetrics:
    return VersionMetrics(requests=requests, values={metric: rate})


def fisher(canary: VersionMetrics, stable: VersionMetrics, metric: Metric = Metric.ERROR_RATE, **rule):
    return compare_proportions(metric, canary, stable, Comparison(**rule), confidence=0.98, min_requests=10)


def test_rare_errors_against_an_error_free_baseline_fail_where_mann_whitney_sees_nothing():
    """kayenta#780, #799: 3 errors in 300 canary requests, none in 2,700 on stable. Per
    10-second interval the canary's series is three 10% readings among zeros: Mann-Whitney
    passes it, Fisher's exact on the counts does not."""
    canary_series, stable_series = [0.1] * 3 + [0.0] * 27, [0.0] * 30
    canary = VersionMetrics(requests=300, values={Metric.ERROR_RATE: 0.01}, samples={Metric.ERROR_RATE: canary_series})
    stable = VersionMetrics(requests=2700, values={Metric.ERROR_RATE: 0.0}, samples={Metric.ERROR_RATE: stable_series})
    observation = Observation(window_seconds=300, canary=canary, stable=stable)

    def judged(test: str):
        policy = BaselinePolicy(metrics={Metric.ERROR_RATE: Comparison(test=test)}, confidence=0.98)
        (result,) = judge_baseline(observation, policy, min_requests=10).metrics
        return result

    proportions, mann_whitney = judged("auto"), judged("mann_whitney")
    assert proportions.verdict is Verdict.FAIL and proportions.p_value < 0.002 and proportions.effect is None
    assert proportions.reason.startswith("Fisher's exact: canary 3/300 vs stable 0/2700")
    assert "+inf%" in proportions.reason
    assert mann_whitney.verdict is Verdict.PASS and mann_whitney.p_value > 0.02
    assert mann_whitney.reason.startswith("Mann-Whitney U")


def test_equal_rates_pass():
    result = fisher(counts(0.01, 300), counts(0.01, 2700))
    assert result.verdict is Verdict.PASS and result.effect == pytest.approx(0) and result.p_value > 0.5


def test_no_errors_on_either_side_pass():
    assert fisher(counts(0.0, 300), counts(0.0, 2700)).verdict is Verdict.PASS


def test_a_significant_but_allowed_effect_passes():
    result = fisher(counts(0.012, 100_000), counts(0.01, 100_000), allowed_effect=0.25)
    assert result.verdict is Verdict.PASS and result.p_value < 0.02 and result.effect == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("canary", "stable"), [(counts(0.5, 5), counts(0.0, 2700)), (counts(0.01, 300), counts(0.0, 9))]
)
def test_too_few_requests_is_inconclusive(canary, stable):
    result = fisher(canary, stable)
    assert result.verdict is Verdict.INCONCLUSIVE and "needed" in result.reason and result.p_value is None


@pytest.mark.parametrize("rate", [None, math.nan, math.inf, 1.5, -0.1])
def test_a_value_that_is_no_proportion_is_inconclusive(rate):
    assert fisher(counts(rate, 300), counts(0.0, 2700)).verdict is Verdict.INCONCLUSIVE
    assert fisher(counts(0.0, 300), counts(rate, 2700)).verdict is Verdict.INCONCLUSIVE


def test_missing_value_reports_the_providers_reason():
    canary = VersionMetrics(requests=300, values={Metric.ERROR_RATE: None}, missing={Metric.ERROR_RATE: "no samples"})
    assert fisher(canary, counts(0.0, 2700)).reason == "canary: no samples"


def test_a_drop_fails_when_a_decrease_is_bad():
    metric = Metric.THUMBNAIL_SUCCESS_RATE
    canary, stable = counts(0.90, 1000, metric), counts(0.99, 1000, metric)
    assert fisher(canary, stable, metric, test="proportions", direction=Direction.DECREASE).verdict is Verdict.FAIL
    assert fisher(canary, stable, metric, test="proportions").verdict is Verdict.PASS


@pytest.mark.parametrize(("canary", "stable"), [(0.05, 0.01), (0.01, 0.05)])
def test_either_direction_fails_a_change_both_ways(canary, stable):
    result = fisher(counts(canary, 2000), counts(stable, 2000), direction=Direction.EITHER)
    assert result.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("metric", "test", "expected"),
    [
        (Metric.ERROR_RATE, "auto", True),
        (Metric.UPLOAD_FAILURE_RATE, "auto", True),
        (Metric.FILE_CORRUPTION_RATE, "auto", True),
        (Metric.P95_LATENCY_MS, "auto", False),
        (Metric.THUMBNAIL_SUCCESS_RATE, "auto", False),
        (Metric.THUMBNAIL_SUCCESS_RATE, "proportions", True),
        (Metric.ERROR_RATE, "mann_whitney", False),
    ],
)
def test_auto_compares_counted_rates_as_proportions(metric, test, expected):
    assert Comparison(test=test).uses_proportions(metric) is expected
