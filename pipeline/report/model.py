"""A release report: what a release did, rebuilt from its history alone.

The status query needs a worker, so nothing here asks the workflow: phases come from
the ReleasePhase search attribute, traffic from the `set_traffic` calls, analyses from
the `observe_metrics` results judged again by `pipeline.decisions` with the release's
own policy (the result's last analysis is what the release itself decided), approvals
and ignored signals from the signals and updates received, holds from the gates'
answers (see messages.py for what the release received).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from temporalio.client import WorkflowHistory

from pipeline import search_attributes
from pipeline.decisions.analysis import judge, judge_bake
from pipeline.decisions.rules import decide
from pipeline.decisions.validation import InvalidRequest, parse_request
from pipeline.models import (
    Analysis,
    AnalysisMemory,
    CalendarVerdict,
    LiveActivityReport,
    MetricCheck,
    Observation,
    ObserveRequest,
    Phase,
    ReleasePolicy,
    ReleaseRequest,
    ReleaseResult,
    TrafficRequest,
    VersionMetrics,
)
from pipeline.report.history import ActivityCall, HistoryUnreadable, ReleaseHistory, read_history
from pipeline.report.messages import ApprovalRecord, IgnoredMessage, approvals, ignored, message_event
from pipeline.report.timeline import Event, activity_event

SHAPES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "set_traffic": (TrafficRequest, None),
    "observe_metrics": (ObserveRequest, Observation),
    "check_calendar": (None, CalendarVerdict),
    "check_live_activity": (None, LiveActivityReport),
}
"""The activities whose input or result the report reads, and the models they must fit."""


class TrafficPoint(BaseModel):
    at: datetime
    weight: int


class PhaseEntry(BaseModel):
    at: datetime
    phase: str


class HoldRecord(BaseModel):
    at: datetime
    gate: str
    why: str
    until: datetime | None = None
    """When the gate said it would open (a deployment window); None: re-checked until clear."""
    cleared_at: datetime | None = None


class ReleaseReport(BaseModel):
    release_id: str
    service: str | None = None
    version: str | None = None
    target: str | None = None
    author: str | None = None
    state: str
    """Temporal's word for the execution: running, completed, failed, terminated..."""
    started_at: datetime
    ended_at: datetime | None = None
    last_event_at: datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    stable_version: str | None = None
    breach: MetricCheck | None = None
    problem: str | None = None
    """Why the request itself could not be read (an invalid request's release)."""
    runs: int = 1
    phases: list[PhaseEntry] = Field(default_factory=list)
    traffic: list[TrafficPoint] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    holds: list[HoldRecord] = Field(default_factory=list)
    ignored: list[IgnoredMessage] = Field(default_factory=list)
    analyses: list[Analysis] = Field(default_factory=list)
    timeline: list[Event] = Field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"


def build_report(history: ReleaseHistory) -> ReleaseReport:
    """The report; HistoryUnreadable names the event whose content this code cannot read."""
    check_shapes(history)
    request, problem = release_request(history.request)
    try:
        result = ReleaseResult.model_validate(history.result) if history.result is not None else None
    except ValidationError as error:
        raise HistoryUnreadable(f"the workflow's result (its completion event) cannot be read: {error}") from None
    report = ReleaseReport(
        release_id=history.workflow_id,
        service=request.service if request else None,
        version=request.version if request else None,
        target=request.target if request else None,
        author=request.author if request else None,
        state=history.state,
        started_at=history.started_at,
        ended_at=history.ended_at,
        last_event_at=history.last_event_at,
        outcome=result.outcome.value if result else None,
        reason=result.reason if result else history.failure,
        stable_version=result.stable_version if result else None,
        breach=result.breach if result else None,
        problem=problem,
        runs=history.runs,
        phases=phases(history),
        traffic=traffic(history, request.version if request else None),
        holds=holds(history),
        analyses=analyses(history, request.policy) if request else [],
    )
    report.approvals = approvals(history, result)
    report.ignored = ignored(history, report.approvals)
    report.timeline = timeline(history, report)
    return report


def check_shapes(history: ReleaseHistory) -> None:
    for call in history.activities:
        request, result = SHAPES.get(call.name, (None, None))
        for model, value, what in ((request, call.input, "input"), (result, call.result, "result")):
            if model is None or value is None:
                continue
            try:
                model.model_validate(value)
            except ValidationError as error:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
                raise HistoryUnreadable(
                    f"event {call.event_id} ({call.name}): its {what} cannot be read: {problem}"
                ) from None


def release_request(raw: Any) -> tuple[ReleaseRequest | None, str | None]:
    """The release's request (a continued run carries it in its continuation)."""
    if isinstance(raw, dict) and "request" in raw and "status" in raw:
        raw = raw["request"]
    try:
        return parse_request(raw), None
    except InvalidRequest as invalid:
        return None, str(invalid)


def phases(history: ReleaseHistory) -> list[PhaseEntry]:
    entries = [PhaseEntry(at=history.started_at, phase=Phase.VALIDATE.value)]
    for at, values in history.attributes:
        value = values.get(search_attributes.PHASE.name) or []
        for phase in [value] if isinstance(value, str) else value:
            if phase != entries[-1].phase:
                entries.append(PhaseEntry(at=at, phase=phase))
    return entries


def traffic(history: ReleaseHistory, version: str | None) -> list[TrafficPoint]:
    """The new version's share after each traffic change the target confirmed: a
    canary weight, or a revert to another version (a rollback after promotion)."""
    points = [TrafficPoint(at=history.started_at, weight=0)]
    for call in history.activities:
        if call.failure is not None or call.ended_at is None:
            continue
        if call.name == "set_traffic":
            points.append(TrafficPoint(at=call.ended_at, weight=call.input["canary_weight"]))
        elif call.name == "revert_version" and call.input.get("version") != version:
            points.append(TrafficPoint(at=call.ended_at, weight=0))
    end = history.ended_at or history.last_event_at
    if end is not None and end > points[-1].at:
        points.append(TrafficPoint(at=end, weight=points[-1].weight))
    return points


def holds(history: ReleaseHistory) -> list[HoldRecord]:
    """Each time a production gate held the release: why, until when if the gate said,
    and when a later check found it clear (the checks of one hold are one record)."""
    found: list[HoldRecord] = []
    holding: dict[str, HoldRecord] = {}
    for call in history.activities:
        check = gate_check(call)
        if check is None:
            continue
        current = holding.pop(check.gate, None)
        if current is not None and check.why == current.why:
            holding[check.gate] = current
            continue
        if current is not None:
            current.cleared_at = check.at
        if check.why:
            found.append(check)
            holding[check.gate] = check
    return found


def gate_check(call: ActivityCall) -> HoldRecord | None:
    """A gate's answer as a hold (`why` empty when the gate was clear), or None."""
    if call.result is None or call.ended_at is None:
        return None
    if call.name == "check_calendar":
        opens = call.result.get("opens_at")
        why = "" if call.result["open"] else call.result["reason"]
        until = datetime.fromisoformat(opens) if opens and why else None
        return HoldRecord(at=call.ended_at, gate="deployment window", why=why, until=until)
    if call.name == "check_live_activity":
        why = "" if call.result["clear"] else call.result["detail"]
        return HoldRecord(at=call.ended_at, gate="live activity", why=why)
    return None


def analyses(history: ReleaseHistory, policy: ReleasePolicy) -> list[Analysis]:
    """Every analysis the release made: an `observe_metrics` call woken by the analysis
    interval's timer, judged as the workflow judged it (a bake against the previous
    version's metrics from before the canary)."""
    found: list[Analysis] = []
    memory, weight, before, reads_before_traffic = AnalysisMemory(), 0, None, 0
    for call in history.activities:
        if call.name == "set_traffic" and call.failure is None and call.ended_at is not None:
            weight = call.input["canary_weight"]
        if call.name != "observe_metrics" or call.result is None:
            continue
        observation = Observation.model_validate(call.result)
        if "timer" not in call.woken_by:
            if weight == 0 and not found:
                reads_before_traffic += 1
            if before is None and not found and closes_before_window(call, reads_before_traffic):
                before = observation.stable if observation.stable.requests else None
            continue
        analysis = judge_observation(observation, call, policy, weight, before)
        decision, memory = decide(analysis, memory, policy)
        found.append(analysis.model_copy(update={"decision": f"{decision.action.value}: {decision.reason}"}))
    return found


def closes_before_window(call: ActivityCall, reads_before_traffic: int) -> bool:
    """Whether this read measured the stable version from before the release: it read
    from a cursor. A local read's cursor is not in history; it is the second read before
    any traffic change (the first opened the window)."""
    if call.input is not None:
        return bool(call.input.get("cursor"))
    return reads_before_traffic == 2


def judge_observation(
    observation: Observation, call: ActivityCall, policy: ReleasePolicy, weight: int, before: VersionMetrics | None
) -> Analysis:
    at = (call.ended_at or call.at).isoformat(timespec="seconds")
    phase = Phase(call.input["ref"]["phase"] if call.input is not None else call.phase)
    if phase is Phase.BAKE:
        return judge_bake(observation, before, policy, at=at)
    return judge(observation, policy, phase=phase, canary_weight=weight, at=at)


def timeline(history: ReleaseHistory, report: ReleaseReport) -> list[Event]:
    events = [Event(at=history.started_at, kind="start", text=started_text(report))]
    events += [Event(at=entry.at, kind="phase", text=f"phase {entry.phase}") for entry in report.phases[1:]]
    events += [event for call in history.activities if (event := activity_event(call)) is not None]
    events += [
        Event(
            at=a.at,
            kind="approval",
            text=f"{a.stage} approved by {a.approver}" + (f": {a.comment}" if a.comment else ""),
        )
        for a in report.approvals
    ]
    events += [event for hold in report.holds for event in hold_events(hold)]
    events += [message_event(message) for message in history.messages]
    events += [
        Event(at=i.at, kind="ignored", text=f"ignored {i.name} from {i.sender}: {i.why}") for i in report.ignored
    ]
    events += [
        Event(
            at=datetime.fromisoformat(a.at),
            kind="analysis",
            text=f"analysis {a.verdict.value} at {a.canary_weight}%: {a.summary}",
        )
        for a in report.analyses
    ]
    if history.ended_at is not None:
        events.append(Event(at=history.ended_at, kind="end", text=ended_text(report)))
    return sorted(events, key=lambda event: event.at)


def hold_events(hold: HoldRecord) -> list[Event]:
    until = f" until {hold.until:%Y-%m-%d %H:%M:%S}" if hold.until else " (re-checked until it clears)"
    events = [Event(at=hold.at, kind="hold", text=f"held by {hold.gate}: {hold.why}{until}")]
    if hold.cleared_at is not None:
        events.append(Event(at=hold.cleared_at, kind="hold", text=f"{hold.gate} clear: the hold ends"))
    return events


def started_text(report: ReleaseReport) -> str:
    if report.problem:
        return f"started with a request that is not valid: {report.problem}"
    by = f" by {report.author}" if report.author else ""
    return f"release of {report.service} {report.version} on {report.target} requested{by}"


def ended_text(report: ReleaseReport) -> str:
    if report.outcome:
        return f"{report.outcome}: {report.reason}"
    return f"workflow {report.state}" + (f": {report.reason}" if report.reason else "")


def report_of(history: WorkflowHistory) -> ReleaseReport:
    """The report of a release's history (recorded, or fetched from Temporal)."""
    return build_report(read_history(history))
