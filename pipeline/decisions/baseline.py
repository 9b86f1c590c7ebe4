"""Canary against baseline (stable) over the same window, as Kayenta does it: a
Mann-Whitney U test per metric on the provider's raw samples, then a weighted score.

Missing data is never filled in: a side with too few finite samples makes that
metric inconclusive (Kayenta once passed a canary with real errors because a missing
baseline was read as zeros). Pure and deterministic, so it runs inside the workflow.
"""

from __future__ import annotations

import math

from scipy.stats import mannwhitneyu

from pipeline.models import BaselinePolicy, BaselineScore, Comparison, ComparisonResult, Direction, Metric, Observation, Verdict

ALTERNATIVE = {Direction.INCREASE: "greater", Direction.DECREASE: "less", Direction.EITHER: "two-sided"}
"""The Mann-Whitney alternative for "the canary is worse", canary as the first sample."""


def judge_baseline(observation: Observation, policy: BaselinePolicy) -> BaselineScore:
    results = [
        compare(
            metric,
            observation.canary.samples.get(metric, []),
            observation.stable.samples.get(metric, []),
            rule,
            confidence=policy.confidence,
            min_samples=policy.min_samples,
        )
        for metric, rule in policy.metrics.items()
    ]
    return score(results, policy)


def compare(
    metric: Metric, canary: list[float], stable: list[float], rule: Comparison, *, confidence: float, min_samples: int
) -> ComparisonResult:
    """Fails when the canary is worse than stable with the given confidence *and* by
    more than the allowed effect; a significant but tiny difference passes."""
    canary, stable = _finite(canary), _finite(stable)
    common = {"metric": metric, "weight": rule.weight, "critical": rule.critical}
    if len(canary) < min_samples or len(stable) < min_samples:
        reason = f"{len(canary)} canary and {len(stable)} stable finite samples, {min_samples} needed each"
        return ComparisonResult(verdict=Verdict.INCONCLUSIVE, reason=reason, **common)
    canary_mean, stable_mean = sum(canary) / len(canary), sum(stable) / len(stable)
    p_value = float(mannwhitneyu(canary, stable, alternative=ALTERNATIVE[rule.direction]).pvalue)
    p_value = 1.0 if math.isnan(p_value) else p_value  # all samples tied: no evidence of a difference
    effect = relative_effect(canary_mean, stable_mean)
    worse = p_value < 1 - confidence and _bad_effect(effect, rule) > rule.allowed_effect
    reason = (
        f"canary mean {canary_mean:.4g} vs stable {stable_mean:.4g} (effect {effect:+.1%}, p={p_value:.3g}, "
        f"{'worse beyond' if worse else 'within'} {rule.direction.value} {rule.allowed_effect:.0%})"
    )
    return ComparisonResult(
        verdict=Verdict.FAIL if worse else Verdict.PASS,
        canary_mean=canary_mean,
        stable_mean=stable_mean,
        p_value=p_value,
        effect=effect if math.isfinite(effect) else None,
        reason=reason,
        **common,
    )


def score(results: list[ComparisonResult], policy: BaselinePolicy) -> BaselineScore:
    """The weight share (0-100) of conclusive metrics that passed. A failed critical
    metric fails the check at score 0; any inconclusive metric makes it inconclusive."""
    conclusive = [result for result in results if result.verdict is not Verdict.INCONCLUSIVE]
    total = sum(result.weight for result in conclusive)
    value = 100 * sum(r.weight for r in conclusive if r.verdict is Verdict.PASS) / total if total else None
    critical = [r for r in conclusive if r.critical and r.verdict is Verdict.FAIL]
    missing = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if critical:
        verdict, value = Verdict.FAIL, 0.0
        summary = "critical metric worse than stable: " + "; ".join(f"{r.metric.value}: {r.reason}" for r in critical)
    elif missing or value is None:
        verdict = Verdict.INCONCLUSIVE
        summary = "inconclusive: " + "; ".join(f"{r.metric.value}: {r.reason}" for r in missing)
    else:
        verdict = _verdict_of(value, policy)
        summary = f"baseline score {value:.0f} ({verdict.value}: pass >= {policy.pass_score:g}, marginal >= {policy.marginal_score:g})"
    return BaselineScore(verdict=verdict, score=value, marginal=verdict is Verdict.MARGINAL, metrics=results, summary=summary)


def relative_effect(canary_mean: float, stable_mean: float) -> float:
    """(canary - stable) / |stable|; ±inf when stable is 0 and the canary is not."""
    if stable_mean == 0:
        return 0.0 if canary_mean == 0 else math.copysign(math.inf, canary_mean)
    return (canary_mean - stable_mean) / abs(stable_mean)


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
