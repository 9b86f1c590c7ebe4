"""What releasectl shows: pure functions from what Temporal returned (a status, a
result, a listing) to text for a terminal."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

from pydantic import BaseModel
from temporalio.client import WorkflowExecution

from pipeline import search_attributes
from pipeline.models import (
    Analysis,
    GateHold,
    MetricCheck,
    ReleaseRequest,
    ReleaseResult,
    ReleaseStatus,
    RevertRecord,
    TrainRequest,
)

BAR_WIDTH = 10
TIMELINE_SHOWN = 8
SUMMARY_LIMIT = 200
GATE_NAMES = {"window": "deployment window", "live_activity": "live activity", "rollback_target": "rollback target"}
ROUTER_ANSWERED = "router"
"""The load generator's name for responses no version served (no X-Served-Version
header): the router answered itself, e.g. 404 before anything is installed."""
REPEATED_VERDICT = re.compile(r"^analysis (\w+): \1: ")

def traffic_bar(weight: int, version: str | None) -> str:
    """`[#####-----] 50% on 2.0.0`; any traffic at all shows at least one mark."""
    filled = (weight * BAR_WIDTH + 50) // 100
    if weight > 0:
        filled = max(filled, 1)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {weight}% on {version or 'the new version'}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = [headers, *rows]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def format_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def check_result(check: MetricCheck) -> str:
    return {True: "pass", False: "FAIL", None: "no data"}[check.passed]


def analysis_summary(analysis: Analysis) -> str:
    """The summary without the verdict it may begin with: shown after the verdict, an
    inconclusive analysis would otherwise read "inconclusive: inconclusive: ..."."""
    return analysis.summary.removeprefix(f"{analysis.verdict.value}: ")


def render_hold(hold: GateHold) -> str:
    """What is held, why, until when, and by which gate (a gate without an end in
    sight is checked again until it clears)."""
    gate = GATE_NAMES.get(hold.gate, hold.gate)
    return f"{hold.change}: {hold.why()} ({gate}" + ("" if hold.until else ", re-checked until it clears") + ")"


def render_served(served: Mapping[str, int]) -> str:
    """Each version's share of the requests the load sent; the router's own answers
    (no version served them) are named as such."""
    total = sum(served.values()) or 1
    shares = []
    for version, count in sorted(served.items()):
        name = "no version (router answered)" if version == ROUTER_ANSWERED else version
        shares.append(f"{name}={count * 100 // total}%")
    return " ".join(shares) or "no requests"


def workflow_summary(request: BaseModel) -> str:
    """The static summary the Temporal UI shows in its workflow list: what is released where."""
    if isinstance(request, TrainRequest):
        members = ", ".join(f"{member.service} {member.version}" for member in request.releases)
        text = f"train {request.train} on {request.target}: {members}"
    elif isinstance(request, ReleaseRequest) and request.revert is not None:
        text = f"revert {request.service} to {request.version or 'the previous version'} on {request.target}"
    elif isinstance(request, ReleaseRequest):
        text = f"release {request.service} {request.version} on {request.target}"
    else:
        text = type(request).__name__
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 3] + "..."


def render_analysis(analysis: Analysis) -> str:
    heading = (
        f"analysis  {analysis.verdict.value} at {clock(analysis.at)} "
        f"({analysis.phase.value}, {analysis.canary_weight}% traffic, {analysis.canary_requests} canary requests)"
    )
    rows = [
        [check.metric.value, format_number(check.value), check.threshold, check_result(check)] for check in analysis.checks
    ]
    table = render_table(["metric", "value", "threshold", "result"], rows)
    return "\n".join([heading, *map(indent, table.splitlines()), indent(analysis_summary(analysis))])


def render_status(status: ReleaseStatus) -> str:
    lines = [
        f"release   {status.release_id}  ({status.service or '?'} {status.version or '?'} on {status.target or '?'})",
        f"phase     {status.phase.value}" + (f"   stable: {status.stable_version}" if status.stable_version else ""),
        f"traffic   {traffic_bar(status.canary_weight, status.version)}",
    ]
    if status.pending_approval is not None:
        stage = status.pending_approval.value
        deadline = f" by {status.approval_deadline}" if status.approval_deadline else ""
        lines.append(
            f"waiting   for {stage} approval{deadline}: releasectl approve {status.release_id} --stage {stage} --approver NAME"
        )
        gate = status.gates.approvals.get(status.pending_approval) if status.gates else None
        if gate is not None:
            lines.append(f"approvers {gate.min_approvals} of {', '.join(gate.approvers)}")
    if status.warm_version is not None:
        until = f" until {status.bake_until}" if status.phase.value == "bake" and status.bake_until else ""
        lines.append(f"warm      {status.warm_version} runs without traffic{until}: the kill switch returns to it at once")
    if status.revert is not None:
        lines.append(f"revert    {render_revert(status.revert)}")
    if status.hold is not None:
        lines.append(f"held      {render_hold(status.hold)}")
    if status.break_glass is not None:
        lines.append(f"BREAK-GLASS by {status.break_glass.actor}: {status.break_glass.reason}")
    if status.paused:
        lines.append(f"paused    traffic holds where it is until: releasectl resume {status.release_id}")
    if status.approvals:
        lines.append("approved  " + ", ".join(f"{a.stage.value} by {a.approver}" for a in status.approvals))
    if status.outcome is not None:
        lines.append(f"outcome   {status.outcome.value}: {status.reason}")
    if status.notification_failures:
        lines.append(f"notify    {len(status.notification_failures)} failed, last: {status.notification_failures[-1]}")
    if status.last_analysis is not None:
        lines.append(render_analysis(status.last_analysis))
    if status.timeline:
        lines.append(render_timeline(status))
    return "\n".join(lines)


def render_timeline(status: ReleaseStatus) -> str:
    shown = status.timeline[-TIMELINE_SHOWN:]
    rows = [[clock(entry.at), entry.phase.value, REPEATED_VERDICT.sub(r"analysis \1: ", entry.message)] for entry in shown]
    table = render_table(["time", "phase", "event"], rows)
    heading = f"timeline  (last {len(shown)} of {len(status.timeline)})"
    return "\n".join([heading, *map(indent, table.splitlines())])


def render_result(result: ReleaseResult) -> str:
    lines = [f"{result.outcome.value}: {result.reason}"]
    if result.breach is not None:
        breach = result.breach
        lines.append(f"breach: {breach.metric.value} {format_number(breach.value)} (threshold {breach.threshold})")
    if result.approvals:
        lines.append("approvals: " + ", ".join(f"{a.stage.value} by {a.approver}" for a in result.approvals))
    if result.after_promotion:
        lines.append("rolled back after promotion: the previous version has all traffic again")
    if result.revert is not None:
        lines.append(f"revert: {render_revert(result.revert)}")
    if result.stable_version:
        lines.append(f"stable version: {result.stable_version}")
    return "\n".join(lines)


def render_revert(revert: RevertRecord) -> str:
    how = "warm, a routing change" if revert.warm else "deployed again"
    return f"{revert.from_version} -> {revert.to_version} ({how}) by {revert.actor}: {revert.reason}"


@dataclass(frozen=True)
class ReleaseRow:
    """One line of `releasectl list`."""

    release_id: str
    service: str
    version: str
    phase: str
    outcome: str
    state: str
    started: str

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> ReleaseRow:
        attributes = execution.typed_search_attributes
        return cls(
            release_id=execution.id,
            service=attributes.get(search_attributes.SERVICE) or "-",
            version=attributes.get(search_attributes.VERSION) or "-",
            phase=attributes.get(search_attributes.PHASE) or "-",
            outcome=attributes.get(search_attributes.OUTCOME) or "-",
            state=execution.status.name.lower() if execution.status else "-",
            started=execution.start_time.strftime("%Y-%m-%d %H:%M:%S"),
        )


def render_releases(rows: Sequence[ReleaseRow]) -> str:
    if not rows:
        return "no releases found"
    headers = ["id", "service", "version", "phase", "outcome", "state", "started"]
    return render_table(headers, [astuple(row) for row in rows])


def clock(at: str) -> str:
    """The time of day of an ISO timestamp: releases are followed within a day."""
    return at.partition("T")[2][:8] or at


def indent(text: str) -> str:
    return "  " + text
