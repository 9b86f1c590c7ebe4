"""What a release would do if it started at a given moment: its phases with their
planned durations from the policy, the calendar holds its production changes would
meet on the way, and the approvals it would wait for. Pure: the moment, the calendar
and the release's gates are given; `releasectl plan` (pipeline/plan.py) reads them.

Approvals are planned as given the moment they are asked for and test suites as
instant: neither has a duration the policy sets, so the plan names them as waits of
unknown length instead of guessing. A production change outside the deployment
windows waits for the next opening (policy `outside_window: wait`) or fails the
release (`fail`), as the workflow's calendar gate does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pipeline.decisions.approvals import stage_required
from pipeline.decisions.calendar import evaluate
from pipeline.models import BusinessCalendar, OutsideWindow, Phase, ReleaseGates, ReleaseRequest, Stage


@dataclass(frozen=True)
class ApprovalHold:
    stage: Stage
    approvers: list[str]
    """Empty with `anyone`: anyone may approve."""
    anyone: bool
    min_approvals: int
    forbid_author: bool
    timeout_seconds: int


@dataclass(frozen=True)
class CalendarHold:
    change: str
    at: datetime
    reason: str
    opens_at: datetime | None
    """None: the release would fail there (no opening within a year, or `outside_window: fail`)."""


@dataclass(frozen=True)
class PlannedPhase:
    phase: Phase
    seconds: float
    detail: str
    starts_at: datetime


@dataclass
class ReleasePlan:
    started_at: datetime
    phases: list[PlannedPhase] = field(default_factory=list)
    approvals: list[ApprovalHold] = field(default_factory=list)
    holds: list[CalendarHold] = field(default_factory=list)
    fails: str | None = None
    """Why the release would fail on its way, or None."""

    @property
    def total_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def ends_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.total_seconds)


def approval_holds(request: ReleaseRequest, gates: ReleaseGates | None) -> list[ApprovalHold]:
    """The stages the release would wait at for approval, and from whom."""
    holds = []
    for stage in Stage:
        if request.revert is None and stage_required(gates, request.policy.required_approvals, stage):
            rule = gates.approvals.get(stage) if gates else None
            holds.append(ApprovalHold(
                stage=stage,
                approvers=rule.approvers if rule else [],
                anyone=rule is None or rule.anyone,
                min_approvals=rule.min_approvals if rule else 1,
                forbid_author=bool(rule and rule.forbid_author),
                timeout_seconds=request.policy.approval_timeout_seconds,
            ))
    return holds


def plan_release(
    request: ReleaseRequest, calendar: BusinessCalendar, gates: ReleaseGates | None, now: datetime
) -> ReleasePlan:
    """The release's phases from `now`, each production change checked against the calendar
    at the moment it would happen."""
    plan = ReleasePlan(started_at=now, approvals=approval_holds(request, gates))
    builder = _Builder(plan, request, calendar)
    if request.revert is not None:
        builder.change("revert", Phase.REVERT, 0, f"revert to {request.version or 'the previous version'}")
        return plan
    policy, approval_stages = request.policy, {hold.stage for hold in plan.approvals}
    suites = ", ".join(policy.test_suites) or "none"
    builder.phase(Phase.STAGING, 0, f"deploy {request.version} to staging; test suites: {suites} (their run time)")
    builder.approval(Stage.CANARY, approval_stages)
    analyses = policy.canary_duration_seconds // policy.analysis_interval_seconds
    builder.change(f"start canary {request.version}", Phase.CANARY, policy.canary_duration_seconds,
                   f"{policy.canary_weight}% of traffic, {analyses} analyses every {policy.analysis_interval_seconds} s")
    builder.approval(Stage.PRODUCTION, approval_stages)
    for weight in policy.steps:
        builder.change(f"route {weight}% to {request.version}", Phase.PROGRESSIVE_SHIFT, policy.step_interval_seconds,
                       f"{weight}% of traffic for {policy.step_interval_seconds} s")
    builder.change(f"promote {request.version}", Phase.FINALIZE, 0, f"{request.version} becomes stable")
    if policy.bake_seconds:
        builder.phase(Phase.BAKE, policy.bake_seconds, f"watched {policy.bake_seconds} s with the previous version warm")
    elif not request.keep_previous:
        builder.phase(Phase.BAKE, policy.retire_delay_seconds,
                      f"previous version kept warm {policy.retire_delay_seconds} s, unwatched, then retired")
    return plan


@dataclass
class _Builder:
    """Appends phases at the running clock, holding production changes at the calendar."""

    plan: ReleasePlan
    request: ReleaseRequest
    calendar: BusinessCalendar

    @property
    def clock(self) -> datetime:
        return self.plan.ends_at

    def phase(self, phase: Phase, seconds: float, detail: str) -> None:
        if self.plan.fails is None:
            self.plan.phases.append(PlannedPhase(phase, seconds, detail, self.clock))

    def approval(self, stage: Stage, stages: set[Stage]) -> None:
        if stage in stages:
            phase = Phase.CANARY_APPROVAL if stage is Stage.CANARY else Phase.PRODUCTION_APPROVAL
            timeout = self.request.policy.approval_timeout_seconds
            self.phase(phase, 0, f"waits for {stage.value} approval (expires after {timeout} s)")

    def change(self, change: str, phase: Phase, seconds: float, detail: str) -> None:
        """A production change: it waits for the calendar first."""
        if self.plan.fails is not None:
            return
        verdict = evaluate(self.calendar, self.clock)
        if not verdict.open:
            opens_at = verdict.opens_at if self.request.policy.outside_window is OutsideWindow.WAIT else None
            self.plan.holds.append(CalendarHold(change, self.clock, verdict.reason, opens_at))
            if opens_at is None:
                self.plan.fails = f"{change}: {verdict.reason}"
                return
            wait = (opens_at - self.clock).total_seconds()
            canary_live = phase in (Phase.PROGRESSIVE_SHIFT, Phase.FINALIZE)
            if canary_live and wait > self.request.policy.max_canary_hold_seconds:
                self.plan.fails = f"{change}: rolled back, the next opening is {wait / 3600:.1f} h away: {verdict.reason}"
                return
            self.phase(phase, wait, f"{change} held until the calendar opens: {verdict.reason}")
        self.phase(phase, seconds, detail)
