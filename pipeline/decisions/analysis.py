"""Analysis verdicts: pure functions from an observation and a policy to a verdict.

Called inside the workflow, so they must stay deterministic (no clocks, no I/O).
What the workflow does about a verdict (advance, hold, roll back, pause) is decided
by `pipeline.decisions.rules`, which remembers earlier checks.
"""

from __future__ import annotations

import math

from pipeline.decisions.baseline import evidence_gap, judge_baseline
from pipeline.models import (
    Analysis,
    BaselinePolicy,
    BaselineScore,
    Bound,
    Comparison,
    Metric,
    MetricCheck,
    Observation,
    Phase,
    ReleasePolicy,
    Verdict,
    VersionMetrics,
)

BEFORE_RELEASE = "before the release"

BAKE_ERROR_RATE = Comparison(test="proportions", allowed_effect=0.25, critical=True)
"""How bake compares the error rate with before the release unless `policy.baseline`
names error_rate. Critical: more errors than before is what a bake is there to catch.
The two windows are taken at different times (before the canary, after promotion),
so some drift of the traffic mix is expected: a quarter more errors than before is
tolerated; a regression such as kayenta#799's (errors where there were none) is far
beyond it. A policy that names error_rate sets its own allowed effect."""


def judge(observation: Observation, policy: ReleasePolicy, *, phase: Phase, canary_weight: int, at: str) -> Analysis:
    """Check the canary's metrics against the policy's rules, and against stable when
    the policy asks for a baseline comparison.

    A window with fewer canary requests than `policy.min_requests`, or a metric
    without data (none, NaN or Inf), is inconclusive: too little evidence is never a pass.
    At 100% canary traffic stable serves nothing to compare with, so only the
    thresholds apply there.
    """
    canary = observation.canary
    scarce = _scarcity(canary.requests, policy.min_requests, "canary")
    checks = _checks(canary, policy, scarce)
    baseline = None
    if policy.baseline is not None and policy.baseline.metrics and canary_weight < 100:
        baseline = _inconclusive_baseline(scarce) if scarce else judge_baseline(
            observation, policy.baseline, min_requests=policy.min_requests
        )
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


def judge_bake(observation: Observation, before: VersionMetrics | None, policy: ReleasePolicy, *, at: str) -> Analysis:
    """Judge the promoted version during bake. It serves all traffic and is read on the
    stable track. The thresholds apply to it as `judge` applies them to a canary. It is
    also compared with `before`, the previous version's metrics from before the canary
    started: on the metrics of `policy.baseline` and, always, the error rate
    (`BAKE_ERROR_RATE` unless the policy names error_rate). A failure there rolls back
    as a canary's baseline failure does.

    `before` never changes during a bake. A metric it holds too little evidence for
    (no `before` at all, too few requests, no value or samples) is left out of the
    comparison and named in the summary as having no pre-release baseline. Comparing
    it anyway would make every check inconclusive, and the inconclusive policy would
    roll back a healthy release. With no metric left, only the thresholds decide.
    """
    current = observation.stable
    scarce = _scarcity(current.requests, policy.min_requests, "new version")
    checks = _checks(current, policy, scarce)
    comparisons, unknown = _bake_comparisons(before, policy)
    baseline = None
    if comparisons.metrics:
        compared = Observation(window_seconds=observation.window_seconds, canary=current, stable=before)
        baseline = _inconclusive_baseline(scarce) if scarce else judge_baseline(
            compared, comparisons, min_requests=policy.min_requests, against=BEFORE_RELEASE
        )
    verdict = _verdict(checks, baseline)
    summary = _summary(verdict, checks, scarce, baseline)
    if unknown:
        summary += f"; no pre-release baseline for {', '.join(unknown)}"
    return Analysis(
        at=at,
        phase=Phase.BAKE,
        canary_weight=100,
        verdict=verdict,
        canary_requests=current.requests,
        checks=checks,
        stable_values=before.values if before else {},
        canary_values=current.values,
        baseline=baseline,
        score=baseline.score if baseline else None,
        summary=f"bake: {summary}",
    )


def compared_with(phase: Phase) -> str:
    """What an analysis in `phase` compares its version with."""
    return BEFORE_RELEASE if phase is Phase.BAKE else "stable"


def describe_breach(check: MetricCheck) -> str:
    return f"{check.metric.value} = {check.value:.4g} breached its threshold ({check.threshold})"


def _scarcity(requests: int, min_requests: int, version: str) -> str | None:
    if requests < min_requests:
        return f"{requests} {version} requests in the window, {min_requests} needed"
    return None


def _checks(version: VersionMetrics, policy: ReleasePolicy, scarce: str | None) -> list[MetricCheck]:
    return [
        _check(metric, version.values.get(metric), bound, scarce or version.missing.get(metric))
        for metric, bound in policy.thresholds.items()
    ]


def _bake_comparisons(before: VersionMetrics | None, policy: ReleasePolicy) -> tuple[BaselinePolicy, list[str]]:
    """The baseline settings for bake, limited to the metrics `before` has evidence for,
    and the metrics left out, with why."""
    settings = policy.baseline or BaselinePolicy()
    wanted = {Metric.ERROR_RATE: BAKE_ERROR_RATE, **settings.metrics}
    if before is None:
        return settings.model_copy(update={"metrics": {}}), [f"{metric.value} (none captured)" for metric in wanted]
    gaps = {
        metric: evidence_gap(before, metric, rule, settings, min_requests=policy.min_requests)
        for metric, rule in wanted.items()
    }
    kept = {metric: rule for metric, rule in wanted.items() if gaps[metric] is None}
    unknown = [f"{metric.value} ({gap})" for metric, gap in gaps.items() if gap]
    return settings.model_copy(update={"metrics": kept}), unknown


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
