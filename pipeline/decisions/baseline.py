"""Canary against baseline (stable) over the same window, as Kayenta does it: a
statistical test per metric, then a weighted score. Rates of counted events are
compared as proportions of requests with Fisher's exact test
(`pipeline.decisions.proportions`); other metrics with a Mann-Whitney U test on the
provider's raw samples.

Missing data is never filled in: a side with too little evidence makes that metric
inconclusive (Kayenta once passed a canary with real errors because a missing
baseline was read as zeros). Pure and deterministic, so it runs inside the workflow.
"""

from __future__ import annotations

import importlib
import math
import os

from pipeline.decisions.proportions import count_gap, counted, fisher_p_value
from pipeline.models import (
    BaselinePolicy,
    BaselineScore,
    Comparison,
    ComparisonResult,
    Direction,
    Metric,
    Observation,
    Verdict,
    VersionMetrics,
)

DEFER_STATISTICS = "PIPELINE_DEFER_STATISTICS"
"""Set in a process that must start fast and judges few comparisons, if any (`releasectl
simulate`, whose worker has no deadlock detector): SciPy is then imported where a
comparison first needs it, not with this module."""


def load_statistics() -> None:
    """Import SciPy's tests (1-2.5 s). Every other process imports them with this module:
    imported inside a workflow activation instead, as a replay or a worker would, they can
    outlast the SDK's 2 s deadlock detector, which fails the activation and interrupts the
    import, leaving SciPy half imported."""
    importlib.import_module("scipy.stats")


if not os.environ.get(DEFER_STATISTICS):
    load_statistics()


ALTERNATIVE = {Direction.INCREASE: "greater", Direction.DECREASE: "less", Direction.EITHER: "two-sided"}
"""The scipy alternative for "the canary is worse", canary as the first sample (or row)."""


def judge_baseline(
    observation: Observation, policy: BaselinePolicy, *, min_requests: int, against: str = "stable"
) -> BaselineScore:
    """`min_requests`: what each side needs for a proportions test (see `compare_proportions`);
    `against`: what the stable side of `observation` is, for the summary."""
    results = [
        compare_metric(metric, rule, observation, policy, min_requests=min_requests)
        for metric, rule in policy.metrics.items()
    ]
    return score(results, policy, against=against)


def compare_metric(
    metric: Metric, rule: Comparison, observation: Observation, policy: BaselinePolicy, *, min_requests: int
) -> ComparisonResult:
    canary, stable = observation.canary, observation.stable
    if rule.uses_proportions(metric):
        return compare_proportions(
            metric, canary, stable, rule, confidence=policy.confidence, min_requests=min_requests
        )
    return compare(
        metric,
        canary.samples.get(metric, []),
        stable.samples.get(metric, []),
        rule,
        confidence=policy.confidence,
        min_samples=policy.min_samples,
    )


def evidence_gap(
    side: VersionMetrics, metric: Metric, rule: Comparison, policy: BaselinePolicy, *, min_requests: int
) -> str | None:
    """Why one side has too little evidence for `metric`'s test, or None when it has enough."""
    if rule.uses_proportions(metric):
        return count_gap(side, metric, min_requests)
    finite = len(_finite(side.samples.get(metric, [])))
    return None if finite >= policy.min_samples else f"{finite} finite samples, {policy.min_samples} needed"


def compare(
    metric: Metric, canary: list[float], stable: list[float], rule: Comparison, *, confidence: float, min_samples: int
) -> ComparisonResult:
    """Mann-Whitney U on the raw samples. Fails when the canary is worse than stable with
    the given confidence *and* by more than the allowed effect; a significant but tiny
    difference passes."""
    canary, stable = _finite(canary), _finite(stable)
    if len(canary) < min_samples or len(stable) < min_samples:
        reason = f"{len(canary)} canary and {len(stable)} stable finite samples, {min_samples} needed each"
        return _inconclusive(metric, rule, reason)
    from scipy.stats import mannwhitneyu  # here too: see DEFER_STATISTICS

    canary_mean, stable_mean = sum(canary) / len(canary), sum(stable) / len(stable)
    p_value = float(mannwhitneyu(canary, stable, alternative=ALTERNATIVE[rule.direction]).pvalue)
    p_value = 1.0 if math.isnan(p_value) else p_value  # all samples tied: no evidence of a difference
    test = f"Mann-Whitney U: canary mean {canary_mean:.4g} vs stable {stable_mean:.4g}"
    return _judged(metric, rule, canary_mean, stable_mean, p_value, confidence=confidence, test=test)


def compare_proportions(
    metric: Metric,
    canary: VersionMetrics,
    stable: VersionMetrics,
    rule: Comparison,
    *,
    confidence: float,
    min_requests: int,
) -> ComparisonResult:
    """Fisher's exact test on the counts behind a rate, with the same failure rule as
    `compare`. A baseline without a single error can fail a canary with some: the
    effect is then +inf, beyond any allowed effect (kayenta#799).

    Each side needs `min_requests` requests, the release's own bar for a window's metrics
    to count. The test is exact, so fewer requests could not make a false failure; but a
    pass on them would be a pass on next to no evidence, which the thresholds refuse too.
    `BaselinePolicy.min_samples` counts sampling intervals, not requests, so it is no bar here."""
    sides = {"canary": canary, "stable": stable}
    gaps = [f"{name}: {gap}" for name, side in sides.items() if (gap := count_gap(side, metric, min_requests))]
    if gaps:
        return _inconclusive(metric, rule, "; ".join(gaps))
    canary_count, stable_count = counted(canary, metric), counted(stable, metric)
    p_value = fisher_p_value(canary_count, stable_count, ALTERNATIVE[rule.direction])
    test = f"Fisher's exact: canary {canary_count} vs stable {stable_count} requests"
    return _judged(metric, rule, canary_count.rate, stable_count.rate, p_value, confidence=confidence, test=test)


def score(results: list[ComparisonResult], policy: BaselinePolicy, *, against: str = "stable") -> BaselineScore:
    """The weight share (0-100) of conclusive metrics that passed. A failed critical
    metric fails the check at score 0; any inconclusive metric makes it inconclusive."""
    conclusive = [result for result in results if result.verdict is not Verdict.INCONCLUSIVE]
    total = sum(result.weight for result in conclusive)
    value = 100 * sum(r.weight for r in conclusive if r.verdict is Verdict.PASS) / total if total else None
    critical = [r for r in conclusive if r.critical and r.verdict is Verdict.FAIL]
    missing = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if critical:
        verdict, value = Verdict.FAIL, 0.0
        summary = f"critical metric worse than {against}: " + "; ".join(f"{r.metric.value}: {r.reason}" for r in critical)
    elif missing or value is None:
        verdict = Verdict.INCONCLUSIVE
        summary = "inconclusive: " + "; ".join(f"{r.metric.value}: {r.reason}" for r in missing)
    else:
        verdict = _verdict_of(value, policy)
        thresholds = f"pass >= {policy.pass_score:g}, marginal >= {policy.marginal_score:g}"
        summary = f"baseline score {value:.0f} ({verdict.value}: {thresholds}) against {against}"
    return BaselineScore(verdict=verdict, score=value, marginal=verdict is Verdict.MARGINAL, metrics=results, summary=summary)


def relative_effect(canary_mean: float, stable_mean: float) -> float:
    """(canary - stable) / |stable|; ±inf when stable is 0 and the canary is not."""
    if stable_mean == 0:
        return 0.0 if canary_mean == 0 else math.copysign(math.inf, canary_mean)
    return (canary_mean - stable_mean) / abs(stable_mean)


def _judged(
    metric: Metric,
    rule: Comparison,
    canary_mean: float,
    stable_mean: float,
    p_value: float,
    *,
    confidence: float,
    test: str,
) -> ComparisonResult:
    """Worse needs both: significance at `confidence` and a bad effect beyond the allowed one."""
    effect = relative_effect(canary_mean, stable_mean)
    worse = p_value < 1 - confidence and _bad_effect(effect, rule) > rule.allowed_effect
    reason = (
        f"{test} (effect {effect:+.1%}, p={p_value:.3g}, "
        f"{'worse beyond' if worse else 'within'} {rule.direction.value} {rule.allowed_effect:.0%})"
    )
    return ComparisonResult(
        metric=metric,
        verdict=Verdict.FAIL if worse else Verdict.PASS,
        canary_mean=canary_mean,
        stable_mean=stable_mean,
        p_value=p_value,
        effect=effect if math.isfinite(effect) else None,
        weight=rule.weight,
        critical=rule.critical,
        reason=reason,
    )


def _inconclusive(metric: Metric, rule: Comparison, reason: str) -> ComparisonResult:
    return ComparisonResult(
        metric=metric, verdict=Verdict.INCONCLUSIVE, weight=rule.weight, critical=rule.critical, reason=reason
    )


def _bad_effect(effect: float, rule: Comparison) -> float:
    if rule.direction is Direction.INCREASE:
        return effect
    if rule.direction is Direction.DECREASE:
        return -effect
    return abs(effect)


def _verdict_of(value: float, policy: BaselinePolicy) -> Verdict:
    if value >= policy.pass_score:
        return Verdict.PASS
    return Verdict.MARGINAL if value >= policy.marginal_score else Verdict.FAIL


def _finite(samples: list[float]) -> list[float]:
    return [sample for sample in samples if sample is not None and math.isfinite(sample)]
