"""Who may approve or break glass, how approvals count, and the approval handlers that
releases and flag rollouts share."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pipeline.decisions import approvals
    from pipeline.models import Approval, ApprovalDecision, ApprovalReceipt, BreakGlass, BreakGlassRecord, Stage
    from workflows.payloads import parse_one, parse_update


MAX_APPROVALS_PER_STAGE = 10


class Approvals:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py) and of
    FeatureRolloutWorkflow (workflows/flags/), kept apart by concern."""

    @workflow.signal
    def approve(self, *payloads: Any) -> None:
        """Fire-and-forget approval: one that cannot count is recorded and ignored."""
        approval = self._parse_signal("approve", ApprovalDecision, payloads)
        if approval is None:
            return
        refusal = self._approval_refusal(approval)
        if refusal is not None:
            self._ignore(f"approve from {approval.approver} for {approval.stage.value}: {refusal}")
            return
        receipt = self._count_approval(approval)
        if not receipt.counted:
            self._ignore(f"approve from {approval.approver} for {approval.stage.value}: {receipt.message}")

    @workflow.update
    def submit_approval(self, *payloads: Any) -> ApprovalReceipt:
        """Approval with an answer: the validator refuses, before anything is recorded,
        an approval that cannot count; a repeated one is acknowledged and counts once."""
        return self._count_approval(parse_one(ApprovalDecision, payloads))

    @submit_approval.validator
    def _validate_approval(self, *payloads: Any) -> None:
        refusal = self._approval_refusal(parse_update(ApprovalDecision, payloads))
        if refusal is not None:
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)

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
