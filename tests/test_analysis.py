"""The pure analysis: threshold rules and their severities, failure budgets,
consecutive passes, the inconclusive policy, the statistical baseline judge and the
bake judge (the promoted version against before the release)."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.decisions.analysis import judge, judge_bake
from pipeline.decisions.baseline import compare
from pipeline.decisions.rules import Action, decide
from pipeline.models import (
    AnalysisMemory,
    Comparison,
    Direction,
    Metric,
    Observation,
    Phase,
    ReleasePolicy,
    ReleaseRequest,
    Verdict,
    VersionMetrics,
)

OK = {Metric.ERROR_RATE: 0.001, Metric.P95_LATENCY_MS: 120.0}


def observe(canary: dict | None = None, *, requests: int = 200, stable: dict | None = None, missing: dict | None = None,
            canary_samples: dict | None = None, stable_samples: dict | None = None, stable_requests: int = 200) -> Observation:
    return Observation(
        window_seconds=60,
        canary=VersionMetrics(requests=requests, values={**OK, **(canary or {})}, missing=missing or {}, samples=canary_samples or {}),
        stable=VersionMetrics(requests=stable_requests, values={**OK, **(stable or {})}, samples=stable_samples or {}),
    )


def policy(**fields) -> ReleasePolicy:
    return ReleasePolicy.model_validate(fields)


def run(policy_: ReleasePolicy, *observations: Observation) -> list:
    """Judge and decide each observation in turn, carrying the memory like the workflow."""
    memory, decisions = AnalysisMemory(), []
    for observation in observations:
        analysis = judge(observation, policy_, phase=Phase.CANARY, canary_weight=10, at="t")
        decision, memory = decide(analysis, memory, policy_)
        decisions.append((analysis, decision))
    return decisions


# --- the request stays backwards compatible ----------------------------------------------


def test_old_threshold_json_still_parses_with_defaults():
    request = ReleaseRequest.model_validate({"service": "gallery", "version": "2", "policy": {"thresholds": {"error_rate": {"max": 0.02}}}})
    rule = request.policy.thresholds[Metric.ERROR_RATE]
    assert rule.max == 0.02 and rule.severity == "fast" and rule.failure_budget == 0 and rule.consecutive_passes == 1
    assert request.policy.thresholds[Metric.P95_LATENCY_MS].max == 500


# --- thresholds and severities ------------------------------------------------------------


def test_healthy_canary_advances():
    ((analysis, decision),) = run(policy(), observe())
    assert analysis.verdict is Verdict.PASS and decision.action is Action.ADVANCE


def test_fast_rule_rolls_back_at_first_breach_naming_the_rule():
    ((analysis, decision),) = run(policy(), observe({Metric.ERROR_RATE: 0.2}))
    assert decision.action is Action.ROLLBACK and decision.breach.metric is Metric.ERROR_RATE
    assert "error_rate = 0.2 breached its threshold (<= 0.01)" in decision.reason


def test_immediate_rule_ignores_the_failure_budget():
    rules = {"file_corruption_rate": {"max": 0, "severity": "immediate", "failure_budget": 5}}
    (_, decision), = run(policy(thresholds=rules), observe({Metric.FILE_CORRUPTION_RATE: 0.001}))
    assert decision.action is Action.ROLLBACK and "[immediate]" in decision.reason


def test_failure_budget_tolerates_failed_checks_but_holds_the_step():
    rules = {"error_rate": {"max": 0.01, "failure_budget": 2}}
    bad = observe({Metric.ERROR_RATE: 0.05})
    actions = [decision.action for _, decision in run(policy(thresholds=rules), bad, observe(), bad, bad)]
    assert actions == [Action.HOLD, Action.ADVANCE, Action.HOLD, Action.ROLLBACK]


def test_standard_rule_holds_then_rolls_back_if_the_breach_persists():
    rules = {"p95_latency_ms": {"max": 500, "severity": "standard"}}
    slow = observe({Metric.P95_LATENCY_MS: 900.0})
    decisions = run(policy(thresholds=rules, standard_persist_checks=3), slow, slow, slow)
    assert [d.action for _, d in decisions] == [Action.HOLD, Action.HOLD, Action.ROLLBACK]
    assert "3 failed checks in a row" in decisions[-1][1].reason


def test_standard_rule_that_recovers_does_not_roll_back():
    rules = {"p95_latency_ms": {"max": 500, "severity": "standard"}}
    slow = observe({Metric.P95_LATENCY_MS: 900.0})
    actions = [d.action for _, d in run(policy(thresholds=rules), slow, slow, observe(), slow, slow)]
    assert Action.ROLLBACK not in actions and actions[2] is Action.ADVANCE


def test_consecutive_passes_are_needed_before_advancing():
    rules = {"error_rate": {"max": 0.01, "consecutive_passes": 3}}
    actions = [d.action for _, d in run(policy(thresholds=rules), observe(), observe(), observe())]
    assert actions == [Action.HOLD, Action.HOLD, Action.ADVANCE]


# --- no data is never a pass --------------------------------------------------------------


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_no_value_nan_or_inf_is_inconclusive_with_the_reason(value):
    ((analysis, decision),) = run(policy(), observe({Metric.ERROR_RATE: value}, missing={Metric.ERROR_RATE: "no samples"} if value is None else None))
    check = next(c for c in analysis.checks if c.metric is Metric.ERROR_RATE)
    assert analysis.verdict is Verdict.INCONCLUSIVE and check.passed is None and check.reason
    assert decision.action is Action.HOLD


def test_too_few_requests_is_inconclusive():
    ((analysis, _),) = run(policy(), observe(requests=3))
    assert analysis.verdict is Verdict.INCONCLUSIVE and "3 canary requests in the window, 10 needed" in analysis.summary


def test_inconclusive_streak_rolls_back_by_default():
    empty = observe(requests=0)
    decisions = run(policy(max_inconclusive_checks=2), empty, empty)
    assert [d.action for _, d in decisions] == [Action.HOLD, Action.ROLLBACK]
    assert "2 checks in a row without enough data" in decisions[-1][1].reason


def test_inconclusive_streak_pauses_for_a_human_by_policy():
    empty = observe(requests=0)
    decisions = run(policy(max_inconclusive_checks=2, on_inconclusive="pause"), empty, empty, empty)
    assert [d.action for _, d in decisions] == [Action.HOLD, Action.PAUSE, Action.HOLD]
    assert "paused for a human decision" in decisions[1][1].reason


def test_a_rule_that_is_not_required_only_records_missing_data():
    rules = {"shoot_completion_rate": {"min": 0.9, "required": False}}
    ((analysis, decision),) = run(policy(thresholds=rules), observe())
    assert analysis.verdict is Verdict.PASS and decision.action is Action.ADVANCE


def test_business_metrics_are_recorded_and_can_gate():
    rules = {"shoot_completion_rate": {"min": 0.9}}
    ((analysis, decision),) = run(policy(thresholds=rules), observe({Metric.SHOOT_COMPLETION_RATE: 0.5}))
    assert analysis.canary_values[Metric.SHOOT_COMPLETION_RATE] == 0.5 and decision.action is Action.ROLLBACK


# --- the statistical baseline judge -------------------------------------------------------


def samples(mean: float, n: int = 30, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, mean * 0.05) for _ in range(n)]


def test_clearly_worse_canary_fails_the_comparison():
    result = compare(Metric.P95_LATENCY_MS, samples(200), samples(100, seed=2), Comparison(allowed_effect=0.1), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.FAIL and result.p_value < 0.02 and result.effect > 0.9


def test_identical_canary_passes_the_comparison():
    same = samples(100)
    result = compare(Metric.P95_LATENCY_MS, same, list(same), Comparison(), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.PASS


def test_all_zero_samples_on_both_sides_pass():
    result = compare(Metric.ERROR_RATE, [0.0] * 10, [0.0] * 10, Comparison(), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.PASS


def test_better_canary_passes_when_only_an_increase_is_bad():
    result = compare(Metric.P95_LATENCY_MS, samples(50), samples(100), Comparison(direction=Direction.INCREASE), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.PASS


def test_a_drop_fails_when_a_decrease_is_bad():
    result = compare(Metric.THUMBNAIL_SUCCESS_RATE, samples(0.5), samples(0.99), Comparison(direction=Direction.DECREASE), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.FAIL


def test_a_significant_but_allowed_effect_passes():
    result = compare(Metric.P95_LATENCY_MS, samples(105, 200), samples(100, 200, seed=2), Comparison(allowed_effect=0.2), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.PASS


@pytest.mark.parametrize(("canary", "stable"), [([1.0, 2.0], samples(1)), (samples(1), []), (samples(1), [math.nan] * 30)])
def test_too_few_finite_samples_is_inconclusive_never_zero_filled(canary, stable):
    result = compare(Metric.ERROR_RATE, canary, stable, Comparison(), confidence=0.98, min_samples=5)
    assert result.verdict is Verdict.INCONCLUSIVE and "needed" in result.reason


BASELINE = {
    "metrics": {
        "p95_latency_ms": {"allowed_effect": 0.1, "weight": 3},
        "error_rate": {"allowed_effect": 0.1, "weight": 1, "critical": True},
    }
}


def baseline_run(canary_p95: float, canary_errors: float, **baseline):
    """The error rate, a counted rate, is compared as proportions of 3,000 requests a side."""
    observation = observe(
        {Metric.ERROR_RATE: canary_errors},
        requests=3000,
        stable_requests=3000,
        canary_samples={Metric.P95_LATENCY_MS: samples(canary_p95)},
        stable_samples={Metric.P95_LATENCY_MS: samples(100, seed=2)},
    )
    ((analysis, decision),) = run(policy(baseline={**BASELINE, **baseline}), observation)
    return analysis, decision


def test_scored_comparison_passes_an_equal_canary():
    analysis, decision = baseline_run(100, 0.001)
    assert analysis.score == 100 and analysis.baseline.verdict is Verdict.PASS and decision.action is Action.ADVANCE
    assert {r.metric for r in analysis.baseline.metrics} == {Metric.P95_LATENCY_MS, Metric.ERROR_RATE}


def test_failed_critical_metric_fails_at_score_zero_and_rolls_back():
    analysis, decision = baseline_run(100, 0.01)
    assert analysis.score == 0 and analysis.verdict is Verdict.FAIL
    assert decision.action is Action.ROLLBACK and decision.breach.metric is Metric.ERROR_RATE
    assert "worse than stable" in decision.reason


def test_score_between_marginal_and_pass_holds():
    analysis, decision = baseline_run(200, 0.001, pass_score=95, marginal_score=20)
    assert analysis.score == 25 and analysis.verdict is Verdict.MARGINAL and decision.action is Action.HOLD


def test_missing_baseline_samples_make_the_comparison_inconclusive():
    observation = observe(canary_samples={Metric.P95_LATENCY_MS: samples(300)})
    ((analysis, decision),) = run(policy(baseline=BASELINE), observation)
    assert analysis.verdict is Verdict.INCONCLUSIVE and decision.action is Action.HOLD


def test_no_baseline_comparison_at_full_canary_traffic():
    """Stable serves nothing at 100%: only the thresholds judge that step."""
    observation = observe(canary_samples={Metric.P95_LATENCY_MS: samples(300)})
    analysis = judge(observation, policy(baseline=BASELINE), phase=Phase.PROGRESSIVE_SHIFT, canary_weight=100, at="t")
    assert analysis.baseline is None and analysis.verdict is Verdict.PASS


# --- the bake judge: the promoted version against before the release ----------------------


def bake(errors: float, *, requests: int = 2000, before: VersionMetrics | None = None, **fields):
    """One bake analysis and its decision: the new version is read on the stable track."""
    observation = Observation(
        window_seconds=60,
        canary=VersionMetrics(),
        stable=VersionMetrics(requests=requests, values={**OK, Metric.ERROR_RATE: errors}),
    )
    policy_ = policy(**fields)
    analysis = judge_bake(observation, before, policy_, at="t")
    decision, _ = decide(analysis, AnalysisMemory(), policy_)
    return analysis, decision


def before_release(errors: float = 0.005, requests: int = 20_000) -> VersionMetrics:
    return VersionMetrics(requests=requests, values={**OK, Metric.ERROR_RATE: errors})


def test_bake_threshold_breach_fails_and_rolls_back():
    analysis, decision = bake(0.2, before=before_release())
    assert analysis.phase is Phase.BAKE and analysis.canary_weight == 100 and analysis.verdict is Verdict.FAIL
    assert decision.action is Action.ROLLBACK and decision.breach.metric is Metric.ERROR_RATE
    assert "breached its threshold" in decision.reason


def test_bake_error_rate_above_before_the_release_fails_even_within_the_threshold():
    analysis, decision = bake(0.03, before=before_release(0.005, 20_000), thresholds={"error_rate": {"max": 0.05}})
    assert all(check.passed for check in analysis.checks)
    assert analysis.verdict is Verdict.FAIL and analysis.score == 0
    (result,) = analysis.baseline.metrics
    assert result.reason.startswith("Fisher's exact: canary 60/2000 vs stable 100/20000")
    assert analysis.summary.startswith("bake: critical metric worse than before the release")
    assert decision.action is Action.ROLLBACK and "worse than before the release" in decision.reason


def test_bake_equal_to_before_the_release_passes():
    analysis, decision = bake(0.005, before=before_release(0.005, 20_000))
    assert analysis.verdict is Verdict.PASS and analysis.score == 100 and decision.action is Action.ADVANCE
    assert analysis.canary_requests == 2000 and analysis.stable_values[Metric.ERROR_RATE] == 0.005
    assert "baseline score 100" in analysis.summary and "against before the release" in analysis.summary


@pytest.mark.parametrize("before", [None, VersionMetrics(), before_release(requests=3)])
def test_bake_without_a_pre_release_baseline_is_judged_by_thresholds_only(before):
    analysis, decision = bake(0.008, before=before)
    assert analysis.baseline is None and analysis.verdict is Verdict.PASS and decision.action is Action.ADVANCE
    assert "no pre-release baseline for error_rate" in analysis.summary
    assert analysis.stable_values == (before.values if before else {})


def test_bake_leaves_out_metrics_before_has_no_evidence_for():
    """p95 has no samples from before the release: only the error rate is compared."""
    latency = {"metrics": {"p95_latency_ms": {"allowed_effect": 0.1}}}
    analysis, _ = bake(0.005, before=before_release(), baseline=latency)
    assert [result.metric for result in analysis.baseline.metrics] == [Metric.ERROR_RATE]
    assert analysis.verdict is Verdict.PASS
    assert "no pre-release baseline for p95_latency_ms (0 finite samples" in analysis.summary


def test_bake_uses_the_policys_own_error_rate_rule():
    lenient = {"metrics": {"error_rate": {"test": "proportions", "allowed_effect": 10}}}
    analysis, _ = bake(0.03, before=before_release(0.005), baseline=lenient, thresholds={"error_rate": {"max": 0.05}})
    assert analysis.verdict is Verdict.PASS and analysis.baseline.metrics[0].p_value < 0.001


def test_scarce_bake_window_is_inconclusive():
    analysis, decision = bake(0.03, requests=5, before=before_release())
    assert analysis.verdict is Verdict.INCONCLUSIVE and decision.action is Action.HOLD
    assert "5 new version requests in the window, 10 needed" in analysis.summary
