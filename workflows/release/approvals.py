"""Who may approve or break glass, and how approvals count."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline.decisions import approvals
    from pipeline.models import Approval, ApprovalDecision, ApprovalReceipt, BreakGlass, BreakGlassRecord, Stage


MAX_APPROVALS_PER_STAGE = 10


class Approvals:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _approved(self, stage: Stage) -> bool:
        return approvals.approved(approvals.stage_gate(self._status.gates, stage), stage, self._status.approvals)

    def _approval_refusal(self, decision: ApprovalDecision) -> str | None:
        if self._request is None:
            return "the release has not started"
        gate = approvals.stage_gate(self._status.gates, decision.stage)
        if len(approvals.approvers_of(decision.stage, self._status.approvals)) >= MAX_APPROVALS_PER_STAGE:
            return f"{decision.stage.value} already has {MAX_APPROVALS_PER_STAGE} approvals"
        return approvals.refusal(decision, gate, self._status.pending_approval, self._request.author)

    def _count_approval(self, decision: ApprovalDecision) -> ApprovalReceipt:
        stage, gate = decision.stage, approvals.stage_gate(self._status.gates, decision.stage)
        counted = decision.approver not in approvals.approvers_of(stage, self._status.approvals)
        if counted:
            self._status.approvals.append(
                Approval(stage=stage, approver=decision.approver, comment=decision.comment, at=self._now())
            )
        given = len(approvals.approvers_of(stage, self._status.approvals))
        message = f"{stage.value}: {given} of {gate.min_approvals} approvals"
        if counted:
            self._note(f"{stage.value} approved by {decision.approver} ({given} of {gate.min_approvals})")
        else:
            message = f"{decision.approver} already approved {stage.value}, counted once; {message}"
        return ApprovalReceipt(
            stage=stage, counted=counted, approvals=given, required=gate.min_approvals, message=message
        )

    def _break_glass_refusal(self, glass: BreakGlass) -> str | None:
        if self._status.outcome is not None or self._progress.promoted:
            return "the release is already over" if self._status.outcome else "the release is already promoted"
        gates = self._status.gates
        return approvals.break_glass_refusal(glass.actor, gates.break_glass if gates else None)

    def _record_break_glass(self, glass: BreakGlass) -> BreakGlassRecord:
        if self._status.break_glass is None:
            self._status.break_glass = BreakGlassRecord(actor=glass.actor, reason=glass.reason, at=self._now())
            self._note(
                f"BREAK-GLASS by {glass.actor}: {glass.reason}; the deployment calendar no longer holds this release"
            )
            workflow.set_current_details(self._details())
        return self._status.break_glass
