"""What the workflow does after an analysis: advance, hold, roll back or pause.

Severities, failure budgets, required consecutive passes and the inconclusive policy
all need the history of earlier checks; that history is an `AnalysisMemory` the
workflow keeps and passes back in. Pure and deterministic, for use in the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipeline.decisions.analysis import compared_with, describe_breach
from pipeline.models import (
    Analysis,
    AnalysisMemory,
    BaselinePolicy,
    BaselineScore,
    MetricCheck,
    OnInconclusive,
    ReleasePolicy,
    RuleRecord,
    Severity,
    Verdict,
)

BASELINE_RULE = "baseline"


class Action(StrEnum):
    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"
    PAUSE = "pause"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    breach: MetricCheck | None = None


@dataclass(frozen=True)
class Rule:
    """A threshold rule or the baseline comparison, as the decision sees it."""

    key: str
    passed: bool | None
    severity: Severity
    failure_budget: int
    consecutive_passes: int
    required: bool
    breach: MetricCheck | None


def decide(analysis: Analysis, memory: AnalysisMemory, policy: ReleasePolicy) -> tuple[Decision, AnalysisMemory]:
    """The decision after `analysis`, and the memory to pass to the next call."""
    rules = _rules(analysis, policy)
    records = {rule.key: _remember(memory.rules.get(rule.key, RuleRecord()), rule.passed) for rule in rules}
    streak = memory.inconclusive_streak + 1 if analysis.verdict is Verdict.INCONCLUSIVE else 0
    decision = _roll_back_for(rules, records, policy) or _inconclusive(streak, analysis, policy) or _hold_or_advance(rules, records, analysis)
    if decision.action is Action.PAUSE:
        streak = 0  # the human decides now; the count starts over after a resume
    return decision, AnalysisMemory(rules={**memory.rules, **records}, inconclusive_streak=streak)


def _rules(analysis: Analysis, policy: ReleasePolicy) -> list[Rule]:
    rules = [_threshold_rule(check) for check in analysis.checks]
    if analysis.baseline is not None:
        settings = policy.baseline or BaselinePolicy()
        rules.append(_baseline_rule(analysis.baseline, settings, compared_with(analysis.phase)))
    return rules


def _threshold_rule(check: MetricCheck) -> Rule:
    return Rule(
        key=check.metric.value,
        passed=check.passed,
        severity=check.severity,
        failure_budget=check.failure_budget,
        consecutive_passes=check.consecutive_passes,
        required=check.required,
        breach=check if check.passed is False else None,
    )


def _baseline_rule(baseline: BaselineScore, settings: BaselinePolicy, against: str) -> Rule:
    """The comparison's breach names its worst metric: the critical failure, or the
    failed metric with the most weight. Bake compares with before the release even
    when the policy has no baseline, on `BaselinePolicy`'s defaults."""
    passed = {Verdict.PASS: True, Verdict.FAIL: False}.get(baseline.verdict)
    failed = sorted((r for r in baseline.metrics if r.verdict is Verdict.FAIL), key=lambda r: (not r.critical, -r.weight))
    breach = None
    if passed is False and failed:
        worst = failed[0]
        breach = MetricCheck(
            metric=worst.metric,
            value=worst.canary_mean,
            threshold=f"baseline score >= {settings.marginal_score:g}, got {baseline.score:.0f}",
            passed=False,
            severity=settings.severity,
            reason=f"worse than {against}: {worst.reason}",
        )
    return Rule(BASELINE_RULE, passed, settings.severity, 0, 1, True, breach)


def _remember(record: RuleRecord, passed: bool | None) -> RuleRecord:
    if passed is True:
        return RuleRecord(failures=record.failures, failing_streak=0, passing_streak=record.passing_streak + 1)
    if passed is False:
        return RuleRecord(failures=record.failures + 1, failing_streak=record.failing_streak + 1, passing_streak=0)
    return RuleRecord(failures=record.failures, failing_streak=record.failing_streak, passing_streak=0)


def _roll_back_for(rules: list[Rule], records: dict[str, RuleRecord], policy: ReleasePolicy) -> Decision | None:
    """The first failed rule whose severity says roll back now, most severe first."""
    order = [Severity.IMMEDIATE, Severity.FAST, Severity.STANDARD]
    for rule in sorted((r for r in rules if r.passed is False), key=lambda r: order.index(r.severity)):
        record = records[rule.key]
        if _must_roll_back(rule, record, policy):
            return Decision(Action.ROLLBACK, _breach_reason(rule, record), rule.breach)
    return None


def _must_roll_back(rule: Rule, record: RuleRecord, policy: ReleasePolicy) -> bool:
    if rule.severity is Severity.IMMEDIATE:
        return True
    if rule.severity is Severity.FAST:
        return record.failures > rule.failure_budget
    spent = rule.failure_budget > 0 and record.failures > rule.failure_budget
    return spent or record.failing_streak >= policy.standard_persist_checks


def _breach_reason(rule: Rule, record: RuleRecord) -> str:
    what = describe_breach(rule.breach) if rule.key != BASELINE_RULE else f"{rule.breach.metric.value} {rule.breach.reason}"
    if rule.severity is Severity.STANDARD:
        return f"{what} [standard: {record.failing_streak} failed checks in a row, {record.failures} in all]"
    if rule.severity is Severity.IMMEDIATE:
        return f"{what} [immediate]"
    return what if record.failures == 1 else f"{what} [fast: {record.failures} failed checks, budget {rule.failure_budget}]"


def _inconclusive(streak: int, analysis: Analysis, policy: ReleasePolicy) -> Decision | None:
    if streak < policy.max_inconclusive_checks:
        return None
    reason = f"{streak} checks in a row without enough data ({analysis.summary})"
    if policy.on_inconclusive is OnInconclusive.PAUSE:
        return Decision(Action.PAUSE, f"{reason}: paused for a human decision (resume, or pull the kill switch)")
    return Decision(Action.ROLLBACK, reason)


def _hold_or_advance(rules: list[Rule], records: dict[str, RuleRecord], analysis: Analysis) -> Decision:
    """Traffic moves on only after a passing analysis in which every rule has its
    required consecutive passes; anything else holds the step."""
    if analysis.verdict is not Verdict.PASS:
        return Decision(Action.HOLD, f"holding: {analysis.summary}")
    short = [
        f"{rule.key} {records[rule.key].passing_streak}/{rule.consecutive_passes}"
        for rule in rules
        if (rule.required or rule.passed is not None) and records[rule.key].passing_streak < rule.consecutive_passes
    ]
    if short:
        return Decision(Action.HOLD, f"holding for consecutive passes: {', '.join(short)}")
    return Decision(Action.ADVANCE, analysis.summary)
