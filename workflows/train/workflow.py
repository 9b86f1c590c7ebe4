"""ReleaseTrainWorkflow: several services released together, each as a child
ReleaseWorkflow (unchanged, visible and steerable on its own), started once every
member it depends on is promoted, independent ones side by side up to `max_parallel`.

A member that does not end promoted stops the train: with `rollback_train`, members not
started never start, running ones roll back (the train pulls their kill switch) and
promoted ones are reverted, dependents first, to the previous version each kept warm for
the train; with `stop`, promoted members stay. Only when the train ends are the previous
versions retired, so until then every revert is a routing change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import pipeline.decisions.flags  # noqa: F401 -- a member's flags are validated with it, from outside the sandbox
    from pipeline.decisions.validation import InvalidRequest, parse_train
    from pipeline.models import (
        ApprovalDecision,
        MemberReport,
        MemberStatus,
        Operator,
        Outcome,
        TrainRequest,
        TrainResult,
        TrainStatus,
    )
    from pipeline.models.train import TrainEntry
    from workflows.payloads import Malformed, bounded, parse_one, read_stop_order

from workflows.train.members import Members

TIMELINE_LIMIT = 200


@workflow.defn
class ReleaseTrainWorkflow(Members):
    def __init__(self) -> None:
        self._request: TrainRequest | None = None
        self._status = TrainStatus(train=workflow.info().workflow_id)
        self._handles: dict[str, workflow.ChildWorkflowHandle] = {}
        self._following: dict[str, Any] = {}
        self._forwarded: dict[str, set[tuple[str, str]]] = {}
        self._failure: tuple[str, Outcome, str] | None = None
        self._changed = False
        self._members_paused = False

    @workflow.run
    async def run(self, *inputs: Any) -> TrainResult:
        self._request = self._validate(inputs)
        self._status.train = self._request.train
        self._status.members = [
            MemberStatus(service=m.service, version=m.version, depends_on=m.depends_on) for m in self._request.releases
        ]
        self._note(f"train {self._request.train}: {len(self._request.releases)} members, "
                   f"on failure {self._request.policy.on_failure}, approvals {self._request.policy.approvals}")
        await self._depart_in_order()
        if self._failure is None:
            await self._retire_previous_versions()
            return self._finish(Outcome.PROMOTED, "every member promoted")
        culprit, outcome, reason = self._failure
        if self._rolls_back():
            await self._roll_back_train()
        else:
            self._never_start_the_rest()
            await self._until_running_members_end()
            await self._retire_previous_versions()
        return self._finish(outcome, reason, culprit)

    def _validate(self, inputs: tuple[Any, ...]) -> TrainRequest:
        """A bad train fails at once, naming the member and field, and starts nothing."""
        try:
            if len(inputs) != 1:
                raise InvalidRequest([f"input: expected one train request, got {len(inputs)} inputs"], "train request")
            return parse_train(inputs[0])
        except InvalidRequest as invalid:
            self._status.outcome, self._status.reason = Outcome.FAILED, str(invalid)
            raise ApplicationError(
                str(invalid), {"problems": invalid.problems}, type="InvalidTrainRequest", non_retryable=True
            ) from None

    @workflow.signal
    def approve(self, *payloads: Any) -> None:
        """With per_train approvals: one approval per stage and approver, forwarded to
        every member as it reaches that stage (each member's own gates still decide
        whether it counts)."""
        approval = self._parse("approve", ApprovalDecision, payloads)
        if approval is None:
            return
        if self._request is not None and self._request.policy.approvals != "per_train":
            self._note(f"ignored approve from {approval.approver}: approvals are per release; approve each member")
            return
        approvers = self._status.approvals.setdefault(approval.stage.value, [])
        if approval.approver not in approvers:
            approvers.append(approval.approver)
            self._note(f"{approval.approver} approves {approval.stage.value} for the train")
        self._changed = True

    @workflow.signal
    def kill_switch(self, *payloads: Any) -> None:
        """Every member to stable at once, whatever the payload says."""
        order = read_stop_order(payloads, "actor", "reason")
        if self._status.killed or self._status.outcome is not None:
            return
        self._status.killed = True
        reason = f"kill switch pulled by {order.actor}: {order.text or 'no reason given'}"
        self._note(reason + (f" ({order.problem}; honoured all the same)" if order.problem else ""))
        if self._failure is None:
            self._failure = ("train", Outcome.ROLLED_BACK, reason)
        self._changed = True

    @workflow.signal
    def pause(self, *payloads: Any) -> None:
        self._set_paused(True, payloads)

    @workflow.signal
    def resume(self, *payloads: Any) -> None:
        self._set_paused(False, payloads)

    @workflow.signal
    def member_update(self, *payloads: Any) -> None:
        """A member's release reporting its phase, traffic and pending approval."""
        report = self._parse("member_update", MemberReport, payloads)
        member = self._member_by_workflow(report.release_id) if report is not None else None
        if member is None:
            return
        member.phase, member.canary_weight = report.phase, report.canary_weight
        member.pending_approval = report.pending_approval
        member.previous_version = report.warm_version or member.previous_version
        self._changed = True

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        self._note(f"ignored {bounded(name, 100)}: no such signal")

    @workflow.query
    def status(self) -> TrainStatus:
        return self._status

    def _set_paused(self, paused: bool, payloads: tuple[Any, ...]) -> None:
        operator = self._parse("pause" if paused else "resume", Operator, payloads, optional=True)
        if operator is None or self._status.paused == paused:
            return
        self._status.paused = paused
        self._note(f"{'paused' if paused else 'resumed'} by {operator.actor} {operator.reason}".rstrip())
        self._changed = True

    def _parse(self, name: str, model: type, payloads: tuple[Any, ...], optional: bool = False) -> Any:
        try:
            return parse_one(model, payloads, optional=optional)
        except Malformed as malformed:
            self._note(f"ignored {name}: {malformed}")
            return None

    def _note(self, message: str) -> None:
        entry = TrainEntry(at=workflow.now().isoformat(timespec="seconds"), message=bounded(message))
        self._status.timeline = [*self._status.timeline, entry][-TIMELINE_LIMIT:]
        workflow.logger.info(message, extra={"train": self._status.train})

    def _finish(self, outcome: Outcome, reason: str, culprit: str | None = None) -> TrainResult:
        self._status.outcome, self._status.reason, self._status.culprit = outcome, reason, culprit
        self._note(f"{outcome.value}: {reason}")
        return TrainResult(
            train=self._status.train, outcome=outcome, reason=reason, culprit=culprit, members=self._status.members
        )
