"""Rates of counted events (errors, failed uploads, corrupted files) compared as
proportions: how many of a version's requests went wrong, canary against stable,
with Fisher's exact test on the 2x2 table of counts.

Mann-Whitney on per-interval rates cannot see a rare error: the series are mostly
zeros on both sides, so ranks tie and a canary failing 1% of its requests against a
baseline with none passes (kayenta#780, #799). The counts keep that evidence, and the
test is exact at any count, so a small window gives a large p-value, never a false
alarm. Pure and deterministic, so it runs inside the workflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.models import Metric, VersionMetrics


@dataclass(frozen=True)
class Proportion:
    events: int
    trials: int

    @property
    def rate(self) -> float:
        return self.events / self.trials

    def __str__(self) -> str:
        return f"{self.events}/{self.trials}"


def count_gap(side: VersionMetrics, metric: Metric, min_requests: int) -> str | None:
    """Why one side's `metric` cannot be counted, or None when it can: fewer requests
    than `min_requests`, no value (none, NaN, Inf), or a value that is no proportion."""
    rate = side.values.get(metric)
    if side.requests < min_requests:
        return f"{side.requests} requests, {min_requests} needed"
    if rate is None or not math.isfinite(rate):
        return side.missing.get(metric) or f"value is {rate}"
    if not 0 <= rate <= 1:
        return f"value {rate:g} is not a proportion"
    return None


def counted(side: VersionMetrics, metric: Metric) -> Proportion:
    """The events behind a rate the provider reports: rate x requests, rounded. Only
    for a side whose `count_gap` is None. The provider gives no denominator per metric,
    so the version's requests stand for it."""
    return Proportion(events=round(side.values[metric] * side.requests), trials=side.requests)


def fisher_p_value(canary: Proportion, stable: Proportion, alternative: str) -> float:
    """Fisher's exact test with the canary as the first row; `alternative` as scipy
    names it ("greater": the canary's rate is higher)."""
    from scipy.stats import fisher_exact  # here: see pipeline.decisions.baseline.DEFER_STATISTICS

    table = [[canary.events, canary.trials - canary.events], [stable.events, stable.trials - stable.events]]
    return float(fisher_exact(table, alternative=alternative).pvalue)
