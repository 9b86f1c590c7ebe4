"""Analysis verdicts: pure functions from an observation and a policy to a verdict.

Called inside the workflow, so they must stay deterministic (no clocks, no I/O).
"""

from __future__ import annotations

from pipeline.models import (
    Analysis,
    MetricCheck,
    Observation,
    Phase,
    ReleasePolicy,
    Verdict,
)


def judge(observation: Observation, policy: ReleasePolicy, *, phase: Phase, canary_weight: int, at: str) -> Analysis:
    """Check the canary's metrics against the policy's thresholds.

    A window with fewer canary requests than `policy.min_requests`, or a metric
    without data, is inconclusive: too little evidence is never a pass.
    """
    canary = observation.canary
    enough_traffic = canary.requests >= policy.min_requests
    checks = [
        _check(metric, canary.values.get(metric) if enough_traffic else None, bound)
        for metric, bound in policy.thresholds.items()
    ]
    verdict = _verdict(checks)
    return Analysis(
        at=at,
        phase=phase,
        canary_weight=canary_weight,
        verdict=verdict,
        canary_requests=canary.requests,
        checks=checks,
        stable_values=observation.stable.values,
        summary=_summary(verdict, checks, canary.requests, policy.min_requests),
    )


def first_breach(analysis: Analysis) -> MetricCheck | None:
    return next((check for check in analysis.checks if check.passed is False), None)


def describe_breach(check: MetricCheck) -> str:
    return f"{check.metric.value} = {check.value:.4g} breached its threshold ({check.threshold})"


def _check(metric, value, bound) -> MetricCheck:
    passed = None if value is None else not bound.breached_by(value)
    return MetricCheck(metric=metric, value=value, threshold=bound.describe(), passed=passed)


def _verdict(checks: list[MetricCheck]) -> Verdict:
    if any(check.passed is False for check in checks):
        return Verdict.FAIL
    if any(check.passed is None for check in checks):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _summary(verdict: Verdict, checks: list[MetricCheck], requests: int, min_requests: int) -> str:
    if verdict is Verdict.FAIL:
        return "; ".join(describe_breach(check) for check in checks if check.passed is False)
    if requests < min_requests:
        return f"inconclusive: {requests} canary requests in the window, {min_requests} needed"
    missing = [check.metric.value for check in checks if check.passed is None]
    if missing:
        return f"inconclusive: no data for {', '.join(missing)}"
    return "all metrics within thresholds"
