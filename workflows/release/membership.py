"""A release started by a release train (its parent workflow) tells the train how it goes:
phase, traffic, pending approval and warm previous version, each time they change
(the train's `member_update` signal). A release without a parent sends nothing, and
none once it has an outcome: the train reads that from the child's result."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline.models import MemberReport


class Membership:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _report_to_train(self) -> None:
        parent = workflow.info().parent
        if parent is not None:
            self._reporter = asyncio.create_task(self._reporting(parent.workflow_id))

    async def _reporting(self, train_id: str) -> None:
        train = workflow.get_external_workflow_handle(train_id)
        reported: MemberReport | None = None
        while True:
            await workflow.wait_condition(lambda: self._status.outcome is None and self._member_report() != reported)
            reported = self._member_report()
            try:
                await train.signal("member_update", reported)
            except Exception:  # the train is gone: the release goes on, and its result stays the truth
                workflow.logger.warning("the train did not take a member update", extra={"train": train_id})
                return

    def _member_report(self) -> MemberReport:
        return MemberReport(
            release_id=self._status.release_id,
            phase=self._status.phase.value,
            canary_weight=self._status.canary_weight,
            pending_approval=self._status.pending_approval,
            stable_version=self._status.stable_version,
            warm_version=self._status.warm_version,
        )
