"""Going back: a revert asked for by a person (a release request with `revert`), the
rollback of a release after its promotion, and the check both make, as every rollback
does, that the version traffic goes back to is not broken (flagger#1931 sent all
traffic to a failing primary).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import read_rollback_window, retire_version, revert_version, version_health
    from pipeline import search_attributes
    from pipeline.decisions.revert import RevertRefused, plan_revert
    from pipeline.models import (
        GateHold,
        MetricCheck,
        Outcome,
        Phase,
        ReleaseResult,
        RevertRecord,
        Slot,
        VersionHealth,
        VersionRequest,
    )

from workflows.release.calls import HEARTBEAT, READ_RETRIES, ROLLBACK_RETRIES, activity_options
from workflows.release.gates import REVERT_GATES
from workflows.release.stopped import ReleaseStopped
from workflows.release.timeline import iso

REVERT_TIMEOUT = timedelta(minutes=15)
"""A warm revert is a routing change at once; on Kubernetes the stable Deployment then
rolls back to the version, which may take minutes."""


class Reverting:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _revert(self) -> ReleaseResult:
        """Back to a version of the rollback window: a routing change if it is warm,
        otherwise deployed again with the configuration it ran with and promoted, without
        staging, canary or approvals. Live activity still holds it; a freeze does not."""
        order = self._request.revert
        self._enter(Phase.REVERT, f"revert of {self._request.service} asked by {order.actor}: {order.reason}")
        window = await self._read(read_rollback_window, self._ref(), "read the rollback window")
        try:
            plan = plan_revert(window, self._request.service, self._request.version)
        except RevertRefused as refused:
            raise ReleaseStopped(Outcome.FAILED, f"revert refused: {refused}") from None
        self._request = self._request.model_copy(update={"version": plan.version, "env": plan.env})
        self._status.version, self._status.stable_version = plan.version, window.stable
        workflow.upsert_search_attributes([search_attributes.VERSION.value_set(plan.version)])
        how = "warm: a routing change" if plan.warm else "not warm: deployed again, then promoted"
        self._note(f"reverting {window.stable} to {plan.version} ({how})")
        await self._note_freeze(f"revert to {plan.version}")
        if plan.warm:
            await self._guard_rollback_target(plan.version, window.stable)
        await self._gate_production_change(f"revert to {plan.version}", REVERT_GATES)
        if plan.warm:
            await self._change(
                revert_version,
                VersionRequest(ref=self._ref(), version=plan.version),
                f"all traffic to {plan.version}",
                timeout=REVERT_TIMEOUT,
            )
        else:
            await self._deploy(Slot.CANARY)
            await self._promote()
            self._progress.promoted = True
        self._status.stable_version, self._status.warm_version = plan.version, window.stable
        self._status.revert = RevertRecord(
            actor=order.actor,
            reason=order.reason,
            from_version=window.stable,
            to_version=plan.version,
            warm=plan.warm,
            at=iso(workflow.now()),
        )
        return self._finish(Outcome.REVERTED, f"{plan.version} is stable again, reverted from {window.stable} ({how})")

    async def _note_freeze(self, change: str) -> None:
        """Say in the timeline when a revert goes through a closed deployment window."""
        if self._status.gates is None:
            return
        try:
            verdict = await self._read_calendar()
        except ActivityError:
            return
        if not verdict.open:
            self._note(f"{change} in a closed deployment window ({verdict.reason}): allowed, a revert reduces risk")

    async def _roll_back_promoted(self, reason: str, breach: MetricCheck | None) -> None:
        """All traffic back to the warm previous version at once, then the new one retired."""
        previous, current = self._status.warm_version, self._request.version
        self._enter(Phase.ROLLBACK, f"after promotion: {reason}", breach=breach)
        self._status.after_promotion = True
        await self._guard_rollback_target(previous, current)
        await self._change(
            revert_version,
            VersionRequest(ref=self._ref(), version=previous),
            f"all traffic back to {previous}",
            retry=ROLLBACK_RETRIES,
            timeout=REVERT_TIMEOUT,
        )
        self._canary_may_get_traffic = False
        self._status.stable_version, self._status.canary_weight = previous, 0
        self._note(f"all traffic back on {previous}")
        await self._change(
            retire_version, VersionRequest(ref=self._ref(), version=current), f"retire {current}",
            retry=ROLLBACK_RETRIES,
        )
        self._status.warm_version = None
        await self._reverse_expand()

    async def _guard_rollback_target(self, target: str | None, current: str | None) -> None:
        """Before traffic goes back to `target`: if `target` fails its health check while
        `current` passes, keep the current split, say why, notify, and wait for a human.
        The kill switch rolls back anyway, on purpose; so does a target that recovers.
        Health that cannot be read does not hold a rollback: unknown is not failing."""
        if target is None or not self._bakes():
            return
        while not self._rollback_forced:
            target_health = await self._health(target)
            if target_health is None or target_health.healthy:
                break
            current_health = await self._health(current) if current else None
            if current_health is None or not current_health.healthy:
                self._note(f"{target} fails its health check ({target_health.detail}), but so does {current}: rolling back")
                break
            self._show_hold(GateHold(
                gate="rollback_target",
                change=f"roll back to {target}",
                reason=f"{target} is failing ({target_health.detail}) while {current} is healthy: the current split "
                "stays until a person pulls the kill switch or it recovers",
            ))
            try:
                await workflow.wait_condition(
                    lambda: self._rollback_forced,
                    timeout=self._request.policy.live_activity_recheck_seconds,
                )
            except asyncio.TimeoutError:
                pass
        if self._status.hold is not None and self._status.hold.gate == "rollback_target":
            self._status.hold = None
            self._note(f"rolling back to {target}" + (": forced by the kill switch" if self._rollback_forced else ""))

    async def _health(self, version: str) -> VersionHealth | None:
        try:
            return await workflow.execute_activity(
                version_health,
                VersionRequest(ref=self._ref(), version=version),
                **activity_options(f"read the health of {version}", timedelta(seconds=30), READ_RETRIES, HEARTBEAT),
            )
        except ActivityError:
            return None
