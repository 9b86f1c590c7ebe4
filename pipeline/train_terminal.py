"""What `releasectl train` shows: pure functions from a train's status or result to
text for a terminal, one row per member with its traffic bar, like `releasectl status`."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.models import MemberStatus, TrainResult, TrainStatus
from pipeline.terminal import TIMELINE_SHOWN, clock, indent, render_table, traffic_bar

MEMBER_HEADERS = ["service", "version", "depends on", "state", "phase", "traffic", "outcome"]
NOT_STARTED = ("waiting", "not_started")


def member_row(member: MemberStatus) -> list[str]:
    traffic = "-" if member.state in NOT_STARTED else traffic_bar(member.canary_weight, member.version)
    outcome = f"{member.outcome.value}: {member.reason}" if member.outcome is not None else "-"
    return [
        member.service,
        member.version,
        ", ".join(member.depends_on) or "-",
        member.state,
        member.phase or "-",
        traffic,
        outcome,
    ]


def render_members(members: Sequence[MemberStatus]) -> str:
    return render_table(MEMBER_HEADERS, [member_row(member) for member in members])


def render_train(status: TrainStatus, train_id: str) -> str:
    """The train's members as a table, then what the train as a whole is doing."""
    lines = [f"train     {status.train}  ({train_id})", render_members(status.members)]
    for stage, services in pending_approvals(status.members).items():
        lines.append(
            f"waiting   {', '.join(services)} for {stage} approval: "
            f"releasectl train approve {train_id} --stage {stage} --approver NAME"
        )
    if status.approvals:
        given = "; ".join(f"{stage} by {', '.join(approvers)}" for stage, approvers in status.approvals.items())
        lines.append(f"approved  {given}")
    if status.paused:
        lines.append(f"paused    no member moves on until: releasectl train resume {train_id}")
    if status.killed:
        lines.append("KILLED    every member is going back to stable")
    if status.outcome is not None:
        lines.append(f"outcome   {render_outcome(status.outcome.value, status.reason, status.culprit)}")
    if status.timeline:
        shown = status.timeline[-TIMELINE_SHOWN:]
        lines.append(f"timeline  (last {len(shown)} of {len(status.timeline)})")
        lines.extend(indent(f"{clock(entry.at)}  {entry.message}") for entry in shown)
    return "\n".join(lines)


def pending_approvals(members: Sequence[MemberStatus]) -> dict[str, list[str]]:
    """The services waiting for each stage's approval."""
    pending: dict[str, list[str]] = {}
    for member in members:
        if member.pending_approval is not None:
            pending.setdefault(member.pending_approval.value, []).append(member.service)
    return pending


def render_train_result(result: TrainResult) -> str:
    outcome = render_outcome(result.outcome.value, result.reason, result.culprit)
    return "\n".join([outcome, render_members(result.members)])


def render_outcome(outcome: str, reason: str | None, culprit: str | None) -> str:
    return f"{outcome}: {reason or '-'}" + (f" (caused by {culprit})" if culprit else "")
