"""Who may approve a stage and when a stage counts as approved: plain functions, so
that the `approve` signal and the `submit_approval` update's validator give the
same answer, and so they can be tested without a workflow."""

from __future__ import annotations

from pipeline.models import Approval, ApprovalDecision, ReleaseGates, Stage, StageGate

ANYONE = StageGate(anyone=True)


def stage_gate(gates: ReleaseGates | None, stage: Stage) -> StageGate:
    """The stage's rule; a stage without one may be approved by anyone, once."""
    if gates is None:
        return ANYONE
    return gates.approvals.get(stage, ANYONE)


def stage_required(gates: ReleaseGates | None, requested: list[Stage], stage: Stage) -> bool:
    """A stage needs approval when the release asks for it or the gates configure it:
    a request can add approvals, never remove one."""
    return stage in requested or (gates is not None and stage in gates.approvals)


def approvers_of(stage: Stage, approvals: list[Approval]) -> list[str]:
    return list(dict.fromkeys(approval.approver for approval in approvals if approval.stage is stage))


def approved(gate: StageGate, stage: Stage, approvals: list[Approval]) -> bool:
    return len(approvers_of(stage, approvals)) >= gate.min_approvals


def refusal(decision: ApprovalDecision, gate: StageGate, pending: Stage | None, author: str | None) -> str | None:
    """Why this approval cannot count, or None when it may."""
    if decision.stage is not pending:
        waiting = f"the pending approval is {pending.value}" if pending else "no approval is pending"
        return f"the {decision.stage.value} approval is not pending ({waiting})"
    if not gate.anyone and decision.approver not in gate.approvers:
        groups = f" (groups: {', '.join(gate.groups)})" if gate.groups else ""
        return f"{decision.approver} may not approve {decision.stage.value}; allowed: {', '.join(gate.approvers) or 'nobody'}{groups}"
    if gate.forbid_author and author is not None and decision.approver == author:
        return f"{decision.approver} is the release's author and may not approve it"
    return None


def break_glass_refusal(actor: str, allowed: list[str] | None) -> str | None:
    """Why `actor` may not break glass (None: they may). `allowed` None: a release
    started before gates existed."""
    if not allowed:
        return "no one may break glass for this service (the gates file names no break_glass approvers)"
    if actor not in allowed:
        return f"{actor} may not break glass; allowed: {', '.join(allowed)}"
    return None
