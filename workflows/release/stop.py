"""How a release stops: a stop order (kill switch, rejection), the rollback that
follows any stop, and the result it ends with."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import set_traffic, stop_version
    from pipeline import search_attributes
    from pipeline.models import MetricCheck, Outcome, Phase, ReleaseResult, Slot, SlotRequest
    from workflows.payloads import read_stop_order

from workflows.release.calls import ROLLBACK_RETRIES, TRAFFIC_TIMEOUT
from workflows.release.stopped import ReleaseStopped


class Stopping:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _pull_kill_switch(self, payloads: tuple[Any, ...]) -> None:
        order = read_stop_order(payloads, "actor", "reason")
        if not self._can_stop("kill_switch", order.actor, order.problem):
            return
        self._stop_ordered_at = workflow.now()
        self._rollback_forced = True
        self._stop = ReleaseStopped(
            Outcome.ROLLED_BACK, f"kill switch pulled by {order.actor}: {order.text or 'no reason given'}"
        )

    def _can_stop(self, name: str, actor: str, problem: str | None = None) -> bool:
        """Whether a stop order still has something to stop. One whose payload was
        malformed stops all the same; the problem is recorded beside it."""
        if problem is not None:
            self._note(f"{name} from {actor}: {problem}; honoured all the same")
        if (self._progress.promoted and not self._baking()) or self._status.outcome is not None:
            over = "over" if self._status.outcome is not None else "promoted and past its bake"
            self._ignore(f"{name} from {actor}: the release is already {over}")
            return False
        if self._stop is not None:
            if name == "kill_switch" and not self._rollback_forced:
                self._rollback_forced = True
                self._note(f"kill switch from {actor}: the rollback goes on whatever the health of its target")
                return False
            self._ignore(f"{name} from {actor}: the release is already stopping ({self._stop.reason})")
            return False
        return True

    async def _roll_back(self, reason: str, breach: MetricCheck | None = None) -> None:
        """All traffic back to stable first, then the canary and staging stopped.
        Only what this release touched is undone: a refused release changes nothing.
        During bake, all traffic goes back to the warm previous version instead."""
        try:
            if self._baking():
                await self._roll_back_promoted(reason, breach)
            elif not self._progress.promoted and self._touched:
                await self._roll_back_canary(reason, breach)
        except ReleaseStopped as failure:
            raise ApplicationError(
                f"rollback incomplete: {failure.reason}", type="RollbackFailed", non_retryable=True
            ) from None

    async def _roll_back_canary(self, reason: str, breach: MetricCheck | None) -> None:
        self._enter(Phase.ROLLBACK, reason, breach=breach)
        if Slot.CANARY in self._touched:
            await self._guard_rollback_target(self._status.stable_version, self._request.version)
            await self._change(
                set_traffic,
                self._traffic(0, segments=False),
                "all traffic to stable",
                retry=ROLLBACK_RETRIES,
                timeout=TRAFFIC_TIMEOUT,
            )
            self._status.canary_weight = 0
            self._canary_may_get_traffic = False
            self._note("all traffic on stable")
        for slot in (Slot.CANARY, Slot.STAGING):
            if slot in self._touched:
                await self._change(
                    stop_version, SlotRequest(ref=self._ref(), slot=slot), f"stop {slot.value}", retry=ROLLBACK_RETRIES
                )
        await self._reverse_expand()

    def _finish(self, outcome: Outcome, reason: str, breach: MetricCheck | None = None) -> ReleaseResult:
        self._status.outcome, self._status.reason = outcome, reason
        self._status.hold = self._status.pending_approval = self._status.approval_deadline = None
        self._enter(Phase.DONE, f"{outcome.value}: {reason}", outcome=outcome, breach=breach)
        self._count_end(outcome, reason, breach)
        workflow.upsert_search_attributes([search_attributes.OUTCOME.value_set(outcome.value)])
        return ReleaseResult(
            release_id=self._status.release_id,
            service=self._status.service,
            version=self._status.version,
            outcome=outcome,
            reason=reason,
            breach=breach,
            canary_weight=self._status.canary_weight,
            stable_version=self._status.stable_version,
            approvals=self._status.approvals,
            break_glass=self._status.break_glass,
            last_analysis=self._status.last_analysis,
            after_promotion=self._status.after_promotion,
            revert=self._status.revert,
            migration=self._status.migration,
            consistency=self._status.consistency,
            warm_version=self._status.warm_version,
        )
