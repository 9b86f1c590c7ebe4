"""ReleaseWorkflow: one release of one service, from staging to full production.

It reads top to bottom like ADR-017: validate the request, deploy to staging (V3)
and run its test suites, wait for the canary approval, run the canary (V2) with a
small share of traffic while its metrics are analysed, wait for the production
approval, shift traffic in timed, analysed steps (V1), then make the new version
stable and retire the old one. Whenever analysis breaches a threshold, the kill
switch is pulled, an approver rejects or the release is cancelled, all traffic goes
back to stable first and the canary is stopped.

Gates guard it on the way: approvals by the people the worker's gates file names
(with a deadline), the deployment calendar and the platform's live activity before
every production change, and webhook notifications that never hold it up.

The workflow only decides; activities touch the world. It keeps no clock but
`workflow.now()` and no randomness, so it replays deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import (
        run_test_suite,
        stop_version,
    )
    from pipeline.decisions import approvals
    from pipeline.models import (
        AnalysisMemory,
        BreakGlass,
        BreakGlassRecord,
        KillReceipt,
        NotificationEvent,
        Operator,
        Outcome,
        Phase,
        Progress,
        ReleaseRequest,
        ReleaseResult,
        ReleaseStatus,
        Slot,
        SlotRequest,
        Stage,
        SuiteRequest,
    )
    from workflows.payloads import bounded, parse_one, parse_update, read_stop_order

from workflows.release.approvals import Approvals
from workflows.release.bake import BAKE_PATCH, Baking
from workflows.release.calls import ActivityCalls
from workflows.release.continuation import ContinuingAsNew
from workflows.release.flags import ShippedFlags
from workflows.release.gates import Gates
from workflows.release.locking import Locking
from workflows.release.membership import Membership
from workflows.release.migration import Migrating
from workflows.release.notifications import Notifications
from workflows.release.patches import Patches
from workflows.release.preparation import Preparation
from workflows.release.revert import Reverting
from workflows.release.stop import Stopping
from workflows.release.stopped import ReleaseStopped
from workflows.release.telemetry import Telemetry
from workflows.release.timeline import Timeline, iso, parse_iso
from workflows.release.traffic import Traffic
from workflows.release.waiting import Waiting

APPROVAL_PHASE = {Stage.CANARY: Phase.CANARY_APPROVAL, Stage.PRODUCTION: Phase.PRODUCTION_APPROVAL}


@workflow.defn
class ReleaseWorkflow(
    Stopping,
    Reverting,
    Baking,
    Migrating,
    Membership,
    Preparation,
    Traffic,
    Gates,
    Approvals,
    Locking,
    ContinuingAsNew,
    Notifications,
    Telemetry,
    Timeline,
    Waiting,
    ShippedFlags,
    ActivityCalls,
    Patches,
):
    """The spine: state, handlers and the phases in ADR order. Each base class is one
    concern of the same workflow in its own module of this package (as Flagger splits
    its scheduler by file); they share this instance's state, set up here."""

    @workflow.init
    def __init__(self, *inputs: Any) -> None:
        self._request: ReleaseRequest | None = None
        self._status = ReleaseStatus(release_id=workflow.info().workflow_id, phase=Phase.VALIDATE)
        self._stop: ReleaseStopped | None = None
        self._touched: set[Slot] = set()
        self._lock: workflow.ChildWorkflowHandle | None = None
        self._lock_guarded = False
        self._progress = Progress()
        self._continued = False
        self._continuing = False
        self._cursor: dict[str, Any] = {}
        self._memory = AnalysisMemory()
        self._analysed_at: datetime | None = None
        self._notifications = 0
        self._deliveries: list[asyncio.Task] = []
        self._traffic_sequence = 0
        self._canary_may_get_traffic = False
        """The router may send traffic to the new version: set before a forward traffic
        change starts, cleared once a rollback's all-to-stable change is confirmed."""
        self._stop_ordered_at: datetime | None = None
        self._rollback_forced = False
        """A person pulled the kill switch: a rollback does not wait for its target's health."""
        self._before_cursor: dict[str, Any] = {}
        self._bake_era = False
        self._resumed = self._resume_if_continued(inputs)

    @workflow.run
    async def run(self, *inputs: Any) -> ReleaseResult:
        self._request = self._validate(inputs)
        self._bake_era = self._patched(BAKE_PATCH)
        self._report_to_train()
        self._count_start()
        try:
            await self._load_gates()
            await self._acquire_lock()
            if self._request.revert is not None:
                return await self._revert()
            stable_version = await self._preflight()
            await self._staging()
            if stable_version is None:
                await self._initial_install()
            else:
                await self._approval(Stage.CANARY)
                await self._canary()
                await self._approval(Stage.PRODUCTION)
                await self._progressive_shift()
                await self._finalize()
            await self._start_flag_rollouts()
            return self._finish(Outcome.PROMOTED, f"{self._request.version} is stable with all traffic")
        except ReleaseStopped as stop:
            await self._turn_flags_off(stop.reason)
            await self._roll_back(stop.reason, stop.breach)
            return self._finish(stop.outcome, stop.reason, stop.breach)
        except asyncio.CancelledError:
            await self._roll_back("release cancelled")
            self._finish(Outcome.ROLLED_BACK, "release cancelled")
            raise
        finally:
            if not self._continuing:  # a continued release keeps its lock and its deliveries are drained
                await self._release_lock()
                await self._drain_notifications()

    @workflow.signal
    def break_glass(self, *payloads: Any) -> None:
        """Let production change outside the deployment calendar, for an urgent fix."""
        glass = self._parse_signal("break_glass", BreakGlass, payloads)
        if glass is None:
            return
        refusal = self._break_glass_refusal(glass)
        if refusal is not None:
            self._ignore(f"break_glass from {glass.actor}: {refusal}")
            return
        self._record_break_glass(glass)

    @workflow.update
    def submit_break_glass(self, *payloads: Any) -> BreakGlassRecord:
        return self._record_break_glass(parse_one(BreakGlass, payloads))

    @submit_break_glass.validator
    def _validate_break_glass(self, *payloads: Any) -> None:
        refusal = self._break_glass_refusal(parse_update(BreakGlass, payloads))
        if refusal is not None:
            raise ApplicationError(refusal, type="BreakGlassRefused", non_retryable=True)

    @workflow.signal
    def reject(self, *payloads: Any) -> None:
        """Stop the release. Stopping is always safe, so a rejection is honoured whatever
        its payload; what could not be read of it is recorded."""
        order = read_stop_order(payloads, "approver", "comment")
        if not self._can_stop("reject", order.actor, order.problem):
            return
        comment = f": {order.text}" if order.text else ""
        stage = order.stage or self._status.phase.value
        self._stop = ReleaseStopped(Outcome.REJECTED, f"rejected at {stage} by {order.actor}{comment}")

    @workflow.signal
    def kill_switch(self, *payloads: Any) -> None:
        """All traffic back to stable now, whatever the payload says."""
        self._pull_kill_switch(payloads)

    @workflow.update
    async def submit_kill_switch(self, *payloads: Any) -> KillReceipt:
        """The kill switch, answered once no traffic reaches the new version."""
        self._pull_kill_switch(payloads)
        ordered = self._stop_ordered_at or workflow.now()
        await workflow.wait_condition(lambda: not self._canary_may_get_traffic or self._status.outcome is not None)
        seconds = (workflow.now() - ordered).total_seconds()
        return KillReceipt(
            outcome=self._status.outcome,
            seconds=seconds,
            message=f"all traffic on stable {self._status.stable_version or ''} after {seconds:.1f}s".replace(
                "  ", " "
            ),
        )

    @submit_kill_switch.validator
    def _validate_kill_switch(self, *payloads: Any) -> None:
        if self._progress.promoted and not self._baking():
            raise ApplicationError(
                "the release is promoted and past its bake: its version is stable; revert to go back",
                type="KillSwitchRefused",
                non_retryable=True,
            )

    @workflow.signal
    def pause(self, *payloads: Any) -> None:
        operator = self._parse_signal("pause", Operator, payloads, optional=True)
        if operator is not None and not self._status.paused:
            self._status.paused = True
            self._note(f"paused by {operator.actor} {operator.reason}".rstrip())

    @workflow.signal
    def resume(self, *payloads: Any) -> None:
        operator = self._parse_signal("resume", Operator, payloads, optional=True)
        if operator is not None and self._status.paused:
            self._status.paused = False
            self._note(f"resumed by {operator.actor} {operator.reason}".rstrip())

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        self._ignore(f"{bounded(name, 100)}: no such signal")

    @workflow.query
    def status(self) -> ReleaseStatus:
        return self._status

    async def _staging(self) -> None:
        """V3: deploy to staging, wait for readiness, run every suite; any failure stops the release."""
        if self._progress.staged:
            return
        self._enter(Phase.STAGING, f"deploying {self._request.version} to staging")
        await self._migrate_staging()
        await self._deploy(Slot.STAGING)
        failures = []
        for suite in self._request.policy.test_suites:
            result = await self._read(
                run_test_suite,
                SuiteRequest(ref=self._ref(), suite=suite, version=self._request.version),
                f"staging suite {suite}",
                timeout=timedelta(minutes=15),
            )
            self._note(
                f"suite {suite} {'passed' if result.passed else 'FAILED'} in {result.duration_seconds:.1f}s: {result.detail}"
            )
            if not result.passed:
                failures.append(f"{suite} ({result.detail})")
        await self._change(stop_version, SlotRequest(ref=self._ref(), slot=Slot.STAGING), "tear down staging")
        if failures:
            raise ReleaseStopped(Outcome.FAILED, "staging tests failed: " + "; ".join(failures))
        await self._prove_contract_on_staging()
        self._progress.staged = True

    async def _approval(self, stage: Stage) -> None:
        """Wait for the stage's approvers, until the policy's deadline. A live canary
        stays under analysis while it waits; an expired wait ends the release."""
        gates = self._status.gates
        if not approvals.stage_required(gates, self._request.policy.required_approvals, stage) or self._approved(stage):
            return
        if self._status.pending_approval is stage:  # a continued run goes on waiting
            given = await self._wait_watching_canary(
                lambda: self._approved(stage), parse_iso(self._status.approval_deadline)
            )
            return self._approval_answered(stage, given)
        gate = approvals.stage_gate(gates, stage)
        who = "any approver" if gate.anyone else f"{gate.min_approvals} of {', '.join(gate.approvers)}"
        self._enter(APPROVAL_PHASE[stage], f"waiting for {stage.value} approval ({who})")
        self._status.pending_approval = stage
        deadline = None
        if gates is not None:
            deadline = workflow.now() + timedelta(seconds=self._request.policy.approval_timeout_seconds)
            self._status.approval_deadline = iso(deadline)
            self._notify(
                NotificationEvent.APPROVAL_NEEDED,
                f"{stage.value} approval needed by {iso(deadline)}: {who}",
                stage=stage,
                approvers=gate.approvers,
                deadline=iso(deadline),
            )
        given = await self._wait_watching_canary(lambda: self._approved(stage), deadline)
        self._approval_answered(stage, given)

    def _approval_answered(self, stage: Stage, given: bool) -> None:
        deadline = self._status.approval_deadline
        self._status.pending_approval = self._status.approval_deadline = None
        if not given:
            raise ReleaseStopped(Outcome.EXPIRED, f"{stage.value} approval not given by {deadline}")

    async def _canary(self) -> None:
        """V2: run the canary beside stable with a small share of traffic and watch it."""
        policy = self._request.policy
        if self._progress.canary_watched:
            return
        if not self._progress.canary_routed:
            self._enter(Phase.CANARY, f"starting canary {self._request.version}")
            await self._gate_production_change(f"start canary {self._request.version}")
            await self._expand_production()
            await self._deploy(Slot.CANARY)
            await self._close_before_window()
            await self._route(policy.canary_weight)
            self._progress.canary_routed = True
        await self._watch(policy.canary_duration_seconds)
        self._progress.canary_watched = True

    async def _progressive_shift(self) -> None:
        """V1: move traffic through the policy's steps, each held and analysed."""
        steps = self._request.policy.steps
        if self._status.phase is not Phase.PROGRESSIVE_SHIFT:
            self._enter(Phase.PROGRESSIVE_SHIFT, f"shifting traffic through {steps}")
        for weight in steps[self._progress.steps_done :]:
            if not self._progress.step_routed:
                await self._gate_production_change(f"route {weight}% to {self._request.version}")
                await self._route(weight)
                self._progress.step_routed = True
            await self._watch(self._request.policy.step_interval_seconds)
            self._progress.steps_done += 1
            self._progress.step_routed = False

    async def _finalize(self) -> None:
        """The canary becomes stable; the previous version stays warm while the new one
        bakes, and is retired once the bake passes."""
        if not self._progress.promoted:
            self._enter(Phase.FINALIZE, f"making {self._request.version} stable")
            await self._gate_production_change(f"promote {self._request.version}")
            self._status.warm_version = await self._promote()
            self._progress.promoted = True
            self._status.stable_version = self._request.version
        previous = self._status.warm_version
        if previous and previous != self._request.version:
            await self._bake_then_retire(previous)
        await self._contract_production()

    async def _initial_install(self) -> None:
        """No stable version to compare a canary against: after the production
        approval, the staged version goes straight to stable, as Argo Rollouts does."""
        self._note("no stable version yet: initial install, canary analysis skipped")
        await self._approval(Stage.PRODUCTION)
        self._enter(Phase.FINALIZE, f"installing {self._request.version}")
        await self._expand_production()
        await self._deploy(Slot.CANARY)
        await self._finalize()
