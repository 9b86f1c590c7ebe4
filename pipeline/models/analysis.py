"""What metrics providers measure and what canary analysis makes of it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.models.base import Metric, Phase, Severity, Strict, Verdict


class VersionMetrics(Strict):
    """What a metrics provider measured for one version over one window.
    A metric is None when the window had no data for it; `missing` says why
    (no samples, NaN, Inf). `samples` are the raw series the baseline comparison
    tests, for the metrics it compares."""

    requests: int = 0
    values: dict[Metric, float | None] = Field(default_factory=dict)
    missing: dict[Metric, str] = Field(default_factory=dict)
    samples: dict[Metric, list[float]] = Field(default_factory=dict)


class Observation(Strict):
    """Result of one `observe` activity: the canary's and stable's metrics over the
    window since `cursor` was taken, and the cursor that opens the next window."""

    window_seconds: float
    canary: VersionMetrics
    stable: VersionMetrics
    cursor: dict[str, Any] = Field(default_factory=dict)


class MetricCheck(Strict):
    """One rule on one metric for one window, carrying what the rules need of its bound
    (severity, budget, passes needed, whether it is required), so nothing is looked up
    again by name."""

    metric: Metric
    value: float | None
    threshold: str
    passed: bool | None  # None: inconclusive
    severity: Severity = Severity.FAST
    reason: str = ""
    failure_budget: int = 0
    consecutive_passes: int = 1
    required: bool = True


class ComparisonResult(Strict):
    """One metric of the baseline comparison."""

    metric: Metric
    verdict: Verdict
    canary_mean: float | None = None
    stable_mean: float | None = None
    p_value: float | None = None
    effect: float | None = None
    weight: float = 1.0
    critical: bool = False
    reason: str


class BaselineScore(Strict):
    verdict: Verdict
    score: float | None
    """0-100: the weight share of conclusive metrics that passed; None when none was conclusive."""
    marginal: bool = False
    metrics: list[ComparisonResult]
    summary: str


class Analysis(Strict):
    at: str
    phase: Phase
    canary_weight: int
    verdict: Verdict
    canary_requests: int
    checks: list[MetricCheck]
    stable_values: dict[Metric, float | None] = Field(default_factory=dict)
    canary_values: dict[Metric, float | None] = Field(default_factory=dict)
    baseline: BaselineScore | None = None
    score: float | None = None
    decision: str = ""
    summary: str


class RuleRecord(Strict):
    """What analysis remembers of one rule between checks."""

    failures: int = 0
    failing_streak: int = 0
    passing_streak: int = 0


class AnalysisMemory(Strict):
    """State the workflow carries from one analysis to the next."""

    rules: dict[str, RuleRecord] = Field(default_factory=dict)
    inconclusive_streak: int = 0
