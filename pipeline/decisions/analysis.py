"""Analysis verdicts: pure functions from an observation and a policy to a verdict.

Called inside the workflow, so they must stay deterministic (no clocks, no I/O).
What the workflow does about a verdict (advance, hold, roll back, pause) is decided
by `pipeline.decisions.rules`, which remembers earlier checks.
"""

from __future__ import annotations

import math

from pipeline.decisions.baseline import judge_baseline
from pipeline.models import (
    Analysis,
    BaselineScore,
    Bound,
    Metric,
    MetricCheck,
    Observation,
    Phase,
    ReleasePolicy,
    Verdict,
)


def judge(observation: Observation, policy: ReleasePolicy, *, phase: Phase, canary_weight: int, at: str) -> Analysis:
    """Check the canary's metrics against the policy's rules, and against stable when
    the policy asks for a baseline comparison.

    A window with fewer canary requests than `policy.min_requests`, or a metric
    without data (none, NaN or Inf), is inconclusive: too little evidence is never a pass.
    At 100% canary traffic stable serves nothing to compare with, so only the
    thresholds apply there.
    """
    canary = observation.canary
    scarce = _scarcity(canary.requests, policy.min_requests)
    checks = [
        _check(metric, canary.values.get(metric), bound, scarce or canary.missing.get(metric))
        for metric, bound in policy.thresholds.items()
    ]
    baseline = None
    if policy.baseline is not None and policy.baseline.metrics and canary_weight < 100:
        baseline = _inconclusive_baseline(scarce) if scarce else judge_baseline(observation, policy.baseline)
    verdict = _verdict(checks, baseline)
    return Analysis(
        at=at,
        phase=phase,
        canary_weight=canary_weight,
        verdict=verdict,
        canary_requests=canary.requests,
        checks=checks,
        stable_values=observation.stable.values,
        canary_values=canary.values,
        baseline=baseline,
        score=baseline.score if baseline else None,
        summary=_summary(verdict, checks, scarce, baseline),
    )


def describe_breach(check: MetricCheck) -> str:
    return f"{check.metric.value} = {check.value:.4g} breached its threshold ({check.threshold})"


def _scarcity(requests: int, min_requests: int) -> str | None:
    if requests < min_requests:
        return f"{requests} canary requests in the window, {min_requests} needed"
    return None


def _check(metric: Metric, value: float | None, bound: Bound, why_missing: str | None) -> MetricCheck:
    """One rule on one value. No value, NaN or Inf is inconclusive, with the reason."""
    common = {
        "metric": metric,
        "threshold": bound.describe(),
        "severity": bound.severity,
        "failure_budget": bound.failure_budget,
        "consecutive_passes": bound.consecutive_passes,
        "required": bound.required,
    }
    if value is not None and not math.isfinite(value):
        return MetricCheck(value=None, passed=None, reason=f"value is {value}", **common)
    if value is None or why_missing:
        return MetricCheck(value=value, passed=None, reason=why_missing or "no samples", **common)
    check = MetricCheck(value=value, passed=not bound.breached_by(value), **common)
    return check if check.passed else check.model_copy(update={"reason": describe_breach(check)})


def _inconclusive_baseline(scarce: str) -> BaselineScore:
    return BaselineScore(verdict=Verdict.INCONCLUSIVE, score=None, metrics=[], summary=f"inconclusive: {scarce}")


def _verdict(checks: list[MetricCheck], baseline: BaselineScore | None) -> Verdict:
    if any(check.passed is False for check in checks) or (baseline and baseline.verdict is Verdict.FAIL):
        return Verdict.FAIL
    if any(check.passed is None and check.required for check in checks):
        return Verdict.INCONCLUSIVE
    if baseline is not None and baseline.verdict is not Verdict.PASS:
        return baseline.verdict
    return Verdict.PASS


def _summary(verdict: Verdict, checks: list[MetricCheck], scarce: str | None, baseline: BaselineScore | None) -> str:
    parts = [check.reason for check in checks if check.passed is False]
    if baseline is not None and baseline.verdict is Verdict.FAIL:
        parts.append(baseline.summary)
    if parts:
        return "; ".join(parts)
    if scarce:
        return f"inconclusive: {scarce}"
    missing = [f"{check.metric.value} ({check.reason})" for check in checks if check.passed is None]
    if verdict is Verdict.INCONCLUSIVE and missing:
        return f"inconclusive: no data for {', '.join(missing)}"
    if baseline is not None and baseline.verdict is not Verdict.PASS:
        return baseline.summary
    return "all metrics within thresholds" + (f"; {baseline.summary}" if baseline else "")
