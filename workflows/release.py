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
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import (
        check_calendar,
        check_live_activity,
        deploy_version,
        load_gates,
        notify,
        observe_metrics,
        preflight,
        promote_canary,
        retire_version,
        run_test_suite,
        set_traffic,
        stop_version,
        wait_ready,
    )
    from pipeline import search_attributes
    from pipeline.decisions import approvals
    from pipeline.decisions.analysis import judge
    from pipeline.decisions.rules import Action, decide
    from pipeline.decisions.validation import InvalidRequest, parse_request
    from pipeline.models import (
        Analysis,
        AnalysisMemory,
        Approval,
        ApprovalDecision,
        ApprovalReceipt,
        BaselinePolicy,
        BreakGlass,
        BreakGlassRecord,
        CalendarRequest,
        Concurrency,
        Continuation,
        DeployRequest,
        GateHold,
        KillReceipt,
        MetricCheck,
        Notification,
        NotificationEvent,
        NotifyRequest,
        Observation,
        ObserveRequest,
        Operator,
        OutsideWindow,
        Outcome,
        Phase,
        PreflightRequest,
        Progress,
        ReleaseRequest,
        ReleaseResult,
        ReleaseStatus,
        RetireRequest,
        ServiceRef,
        Slot,
        SlotRequest,
        Stage,
        SuiteRequest,
        TimelineEntry,
        TrafficRequest,
        VersionMetrics,
    )
    from workflows.lock import LockGuard, ServiceLockWorkflow, lock_id
    from workflows.payloads import Malformed, bounded, parse_one, read_stop_order

APPROVAL_PHASE = {Stage.CANARY: Phase.CANARY_APPROVAL, Stage.PRODUCTION: Phase.PRODUCTION_APPROVAL}
TIMELINE_LIMIT = 200
TIMELINE_MESSAGE_LIMIT = 2_500
LOCK_RETRY_MAX_SECONDS = 60
LOCK_GRACE_SECONDS = 10
"""Even a refusing release waits this long: a lock whose release just ended is freed
a moment later, and a release started right after it should not be refused."""

CHANGE_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10)
ROLLBACK_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5))
"""A rollback never gives up, and retries often: an operator sees it retrying in the
UI until the target answers, and it lands within seconds of the target coming back."""
TRAFFIC_TIMEOUT = timedelta(seconds=30)
"""A traffic change is a file write or an API patch and its confirmation: seconds."""
HEARTBEAT = timedelta(seconds=5)
"""Every activity that changes the world or waits on it heartbeats: a worker lost in the
middle of one is noticed in seconds and the activity retried elsewhere, not after its
whole timeout."""
LONG_ACTIVITY = timedelta(minutes=2)
"""Reads allowed longer than this (readiness, staging suites) heartbeat too."""
READ_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5), maximum_attempts=3)
NOTIFY_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=10), maximum_attempts=3)
NOTIFY_DRAIN_SECONDS = 60
"""How long a finished release waits for its last notifications before it closes."""
GATES_PATCH = "release-gates"
"""Releases started before gates existed replay without them (see `_load_gates`)."""
GUARDED_LOCK_PATCH = "guarded-lock"
"""Releases started before continue-as-new hold a lock that ends with their run."""
CONTINUE_AS_NEW_EVENTS = 8_000
"""History length at which a release continues as new, below Temporal's 10,240-event
warning and far below the 51,200 at which the server would end it with its canary live."""
MAX_APPROVALS_PER_STAGE = 10


class ReleaseStopped(Exception):
    """Ends the forward path of a release; `run` rolls back and reports the outcome."""

    def __init__(self, outcome: Outcome, reason: str, breach: MetricCheck | None = None):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.breach = breach


@workflow.defn
class ReleaseWorkflow:
    def __init__(self) -> None:
        self._request: ReleaseRequest | None = None
        self._status = ReleaseStatus(release_id=workflow.info().workflow_id, phase=Phase.VALIDATE)
        self._stop: ReleaseStopped | None = None
        self._touched: set[Slot] = set()
        self._promoted = False
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

    @workflow.run
    async def run(self, *inputs: Any) -> ReleaseResult:
        self._request = self._validate(inputs)
        try:
            await self._load_gates()
            await self._acquire_lock()
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
            return self._finish(Outcome.PROMOTED, f"{self._request.version} is stable with all traffic")
        except ReleaseStopped as stop:
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

    # --- signals, updates and queries ----------------------------------------------------
    # Each takes `*payloads`: whatever a person or script sends (none, several, wrong
    # types) is read here and recorded if unusable; it never fails a workflow task.

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
        approval = _parse_update(ApprovalDecision, payloads)
        refusal = self._approval_refusal(approval)
        if refusal is not None:
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)

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
        refusal = self._break_glass_refusal(_parse_update(BreakGlass, payloads))
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
            message=f"all traffic on stable {self._status.stable_version or ''} after {seconds:.1f}s".replace("  ", " "),
        )

    @submit_kill_switch.validator
    def _validate_kill_switch(self, *payloads: Any) -> None:
        if self._promoted:
            raise ApplicationError(
                "the release is already promoted: its version is stable; release the previous version to go back",
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

    def _pull_kill_switch(self, payloads: tuple[Any, ...]) -> None:
        order = read_stop_order(payloads, "actor", "reason")
        if not self._can_stop("kill_switch", order.actor, order.problem):
            return
        self._stop_ordered_at = workflow.now()
        self._stop = ReleaseStopped(Outcome.ROLLED_BACK, f"kill switch pulled by {order.actor}: {order.text or 'no reason given'}")

    # --- the release, phase by phase ---------------------------------------------------

    def _validate(self, inputs: tuple[Any, ...]) -> ReleaseRequest:
        """A bad request fails the workflow at once, naming each bad field, before
        anything is touched; it never leaves a workflow task retrying. A continued run
        (and only one: the server marks it) resumes from what its predecessor carried."""
        if len(inputs) == 2 and workflow.info().continued_run_id is not None:
            return self._resume(Continuation.model_validate(inputs[1]))
        try:
            if len(inputs) != 1:
                raise InvalidRequest([f"input: expected one release request, got {len(inputs)} inputs"])
            request = parse_request(inputs[0])
        except InvalidRequest as invalid:
            self._status.outcome, self._status.reason = Outcome.FAILED, str(invalid)
            self._status.phase = Phase.DONE
            workflow.upsert_search_attributes(
                [search_attributes.PHASE.value_set(Phase.DONE.value), search_attributes.OUTCOME.value_set(Outcome.FAILED.value)]
            )
            raise ApplicationError(str(invalid), {"problems": invalid.problems}, type="InvalidReleaseRequest", non_retryable=True) from None
        self._status.service, self._status.version, self._status.target = request.service, request.version, request.target
        workflow.upsert_search_attributes(
            [search_attributes.SERVICE.value_set(request.service), search_attributes.VERSION.value_set(request.version)]
        )
        return request

    async def _load_gates(self) -> None:
        """Read who may approve and which webhooks to tell, once, into history.
        A release whose history predates gates replays without them."""
        if self._continued or not workflow.patched(GATES_PATCH):
            return
        self._status.gates = await self._read(load_gates, self._ref(), "read the release gates")
        self._note(f"gates from {self._status.gates.source}")

    async def _acquire_lock(self) -> None:
        """Take the service's release lock, or refuse, or queue for it, by policy. The
        lock is a guard that outlives this run (a continued run keeps it) and ends
        with the release however it ends; see workflows/lock.py."""
        if self._progress.locked:
            return
        request = self._request
        patience = LOCK_GRACE_SECONDS if request.policy.concurrency is Concurrency.REFUSE else None
        waited, delay = 0, 1
        while True:
            await self._continue_if_history_long()
            try:
                self._lock = await self._start_lock()
                self._progress.locked = True
                return
            except WorkflowAlreadyStartedError:
                busy = (
                    f"another release of {request.service} is running (lock {lock_id(request.service)}); find it with "
                    f"temporal workflow list --query 'ReleaseService=\"{request.service}\" AND ExecutionStatus=\"Running\"'"
                )
                if patience is not None and waited >= patience:
                    raise ReleaseStopped(Outcome.FAILED, busy) from None
                if self._status.phase is not Phase.WAITING_FOR_LOCK:
                    self._enter(Phase.WAITING_FOR_LOCK, busy)
                await self._sleep(delay)
                waited, delay = waited + delay, min(delay * 2, LOCK_RETRY_MAX_SECONDS)

    async def _start_lock(self) -> workflow.ChildWorkflowHandle:
        request = self._request
        if not workflow.patched(GUARDED_LOCK_PATCH):
            return await workflow.start_child_workflow(
                ServiceLockWorkflow.run, workflow.info().workflow_id,
                id=lock_id(request.service), parent_close_policy=ParentClosePolicy.TERMINATE,
            )
        self._lock_guarded = True
        guard = LockGuard(holder=workflow.info().workflow_id, service=request.service, target=request.target)
        return await workflow.start_child_workflow(
            ServiceLockWorkflow.run, args=[guard.holder, guard],
            id=lock_id(request.service), parent_close_policy=ParentClosePolicy.ABANDON,
        )

    async def _preflight(self) -> str | None:
        if self._progress.preflight:
            return self._status.stable_version
        report = await self._change(
            preflight,
            PreflightRequest(ref=self._ref(), suites=self._request.policy.test_suites),
            "check the target can run this release",
        )
        if report.missing_suites:
            raise ReleaseStopped(
                Outcome.FAILED, f"test suites not in the worker's catalog for {self._request.service}: {', '.join(report.missing_suites)}"
            )
        self._status.stable_version = report.stable_version
        self._progress.preflight = True
        return report.stable_version

    async def _staging(self) -> None:
        """V3: deploy to staging, wait for readiness, run every suite; any failure stops the release."""
        if self._progress.staged:
            return
        self._enter(Phase.STAGING, f"deploying {self._request.version} to staging")
        await self._deploy(Slot.STAGING)
        failures = []
        for suite in self._request.policy.test_suites:
            result = await self._read(
                run_test_suite,
                SuiteRequest(ref=self._ref(), suite=suite, version=self._request.version),
                f"staging suite {suite}",
                timeout=timedelta(minutes=15),
            )
            self._note(f"suite {suite} {'passed' if result.passed else 'FAILED'} in {result.duration_seconds:.1f}s: {result.detail}")
            if not result.passed:
                failures.append(f"{suite} ({result.detail})")
        await self._change(stop_version, SlotRequest(ref=self._ref(), slot=Slot.STAGING), "tear down staging")
        if failures:
            raise ReleaseStopped(Outcome.FAILED, "staging tests failed: " + "; ".join(failures))
        self._progress.staged = True

    async def _approval(self, stage: Stage) -> None:
        """Wait for the stage's approvers, until the policy's deadline. A live canary
        stays under analysis while it waits; an expired wait ends the release."""
        gates = self._status.gates
        if not approvals.stage_required(gates, self._request.policy.required_approvals, stage) or self._approved(stage):
            return
        if self._status.pending_approval is stage:  # a continued run goes on waiting
            given = await self._hold(lambda: self._approved(stage), _parse_iso(self._status.approval_deadline))
            return self._approval_answered(stage, given)
        gate = approvals.stage_gate(gates, stage)
        who = "any approver" if gate.anyone else f"{gate.min_approvals} of {', '.join(gate.approvers)}"
        self._enter(APPROVAL_PHASE[stage], f"waiting for {stage.value} approval ({who})")
        self._status.pending_approval = stage
        deadline = None
        if gates is not None:
            deadline = workflow.now() + timedelta(seconds=self._request.policy.approval_timeout_seconds)
            self._status.approval_deadline = _iso(deadline)
            self._notify(
                NotificationEvent.APPROVAL_NEEDED,
                f"{stage.value} approval needed by {_iso(deadline)}: {who}",
                stage=stage,
                approvers=gate.approvers,
                deadline=_iso(deadline),
            )
        given = await self._hold(lambda: self._approved(stage), deadline)
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
            await self._deploy(Slot.CANARY)
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
        """The canary becomes stable; the previous version is retired after a delay,
        so it stays at hand while the new one settles."""
        self._enter(Phase.FINALIZE, f"making {self._request.version} stable")
        await self._gate_production_change(f"promote {self._request.version}")
        previous = await self._change(
            promote_canary, self._ref(), f"promote {self._request.version} to stable", timeout=timedelta(minutes=15)
        )
        self._promoted = True
        self._status.stable_version = self._request.version
        if previous and previous != self._request.version:
            self._note(f"retiring {previous} in {self._request.policy.retire_delay_seconds}s")
            await workflow.sleep(self._request.policy.retire_delay_seconds)
            await self._change(retire_version, RetireRequest(ref=self._ref(), version=previous), f"retire {previous}")

    async def _initial_install(self) -> None:
        """No stable version to compare a canary against: after the production
        approval, the staged version goes straight to stable, as Argo Rollouts does."""
        self._note("no stable version yet: initial install, canary analysis skipped")
        await self._approval(Stage.PRODUCTION)
        self._enter(Phase.FINALIZE, f"installing {self._request.version}")
        await self._deploy(Slot.CANARY)
        await self._finalize()

    async def _roll_back(self, reason: str, breach: MetricCheck | None = None) -> None:
        """All traffic back to stable first, then the canary and staging stopped.
        Only what this release touched is undone: a refused release changes nothing."""
        if self._promoted or not self._touched:
            return
        self._enter(Phase.ROLLBACK, reason, breach=breach)
        try:
            if Slot.CANARY in self._touched:
                await self._change(
                    set_traffic, self._traffic(0, segments=False), "all traffic to stable",
                    retry=ROLLBACK_RETRIES, timeout=TRAFFIC_TIMEOUT,
                )
                self._status.canary_weight = 0
                self._canary_may_get_traffic = False
                self._note("all traffic on stable")
            for slot in (Slot.CANARY, Slot.STAGING):
                if slot in self._touched:
                    await self._change(stop_version, SlotRequest(ref=self._ref(), slot=slot), f"stop {slot.value}", retry=ROLLBACK_RETRIES)
        except ReleaseStopped as failure:
            raise ApplicationError(f"rollback incomplete: {failure.reason}", type="RollbackFailed", non_retryable=True) from None

    def _finish(self, outcome: Outcome, reason: str, breach: MetricCheck | None = None) -> ReleaseResult:
        self._status.outcome, self._status.reason = outcome, reason
        self._status.hold = self._status.pending_approval = self._status.approval_deadline = None
        self._enter(Phase.DONE, f"{outcome.value}: {reason}", outcome=outcome, breach=breach)
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
        )

    async def _release_lock(self) -> None:
        """Free the lock for the next release. Should the signal fail, the lock still
        ends when it sees this release closed (or, for a lock started before guards
        existed, by its parent-close policy)."""
        if not self._progress.locked:
            return
        self._progress.locked = False
        if self._lock_guarded:
            lock = self._lock or workflow.get_external_workflow_handle(lock_id(self._request.service))
            release = lock.signal(ServiceLockWorkflow.release, workflow.info().workflow_id)
        else:
            release = self._lock.signal(ServiceLockWorkflow.release)
        try:
            await release
        except ApplicationError as error:
            self._note(f"lock release signal failed ({error}); the lock ends when it sees this release closed")

    # --- deploying, routing and watching -------------------------------------------------

    async def _deploy(self, slot: Slot) -> None:
        self._touched.add(slot)
        deploy = DeployRequest(ref=self._ref(), slot=slot, version=self._request.version, env=self._request.env)
        await self._change(deploy_version, deploy, f"deploy {self._request.version} to {slot.value}")
        await self._read(wait_ready, deploy, f"wait until {slot.value} {self._request.version} is ready", timeout=timedelta(minutes=10))

    async def _route(self, weight: int) -> None:
        """Send `weight` percent of traffic (and the canary segments) to the new version.
        A paused release holds its traffic where it is. A kill switch or rejection
        does not wait for the change: it is abandoned, and the rollback's change, newer
        in sequence, wins at the target even if the abandoned one lands later."""
        await self._wait_for(lambda: not self._status.paused)
        self._canary_may_get_traffic = True
        summary = f"route {weight}% to {self._request.version}"
        try:
            await self._interruptible(
                set_traffic, self._traffic(weight, segments=True), summary,
                TRAFFIC_TIMEOUT, retry=CHANGE_RETRIES, heartbeat=HEARTBEAT,
            )
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {_cause(error)}") from None
        self._status.canary_weight = weight
        self._note(f"{weight}% of traffic on {self._request.version}")

    async def _watch(self, seconds: int) -> None:
        """Analyse every interval for `seconds`, and beyond while paused or while the
        last check did not let traffic advance (a failure within its budget or severity,
        an inconclusive or marginal check, too few consecutive passes)."""
        interval = self._request.policy.analysis_interval_seconds
        if self._progress.watch_elapsed == 0:
            self._cursor = (await self._observe()).cursor
        action = None
        while self._progress.watch_elapsed < seconds or self._status.paused or action is not Action.ADVANCE:
            await self._continue_if_history_long()
            await self._sleep(interval)
            self._progress.watch_elapsed += interval
            action = await self._analyse()
        self._progress.watch_elapsed = 0

    async def _analyse(self) -> Action:
        """One analysis over the window since the last one, and what it calls for:
        a rollback stops the release; a pause waits for a human's resume or kill switch."""
        policy = self._request.policy
        observation = await self._observe()
        self._cursor = observation.cursor
        with workflow.unsafe.imports_passed_through(), workflow.unsafe.sandbox_unrestricted():
            # SciPy imports lazily and reads the environment as it does; its test is deterministic
            analysis = judge(observation, policy, phase=self._status.phase, canary_weight=self._status.canary_weight, at=self._now())
        decision, self._memory = decide(analysis, self._memory, policy)
        self._analysed_at = workflow.now()
        self._record(analysis.model_copy(update={"decision": f"{decision.action.value}: {decision.reason}"}))
        if decision.action is Action.ROLLBACK:
            where = f" at {analysis.canary_weight}% canary traffic" if decision.breach else ""
            raise ReleaseStopped(Outcome.ROLLED_BACK, f"{decision.reason}{where}", decision.breach)
        if decision.action is Action.PAUSE and not self._status.paused:
            self._status.paused = True
            self._note(decision.reason)
        return decision.action

    async def _observe(self) -> Observation:
        """Metrics since the cursor. A provider that cannot be read gives an empty
        observation, which analysis counts as inconclusive, never as healthy."""
        policy = self._request.policy
        baseline = policy.baseline or BaselinePolicy()
        request = ObserveRequest(
            ref=self._ref(),
            cursor=self._cursor,
            provider=policy.metrics_provider,
            queries=policy.queries,
            metrics=list(dict.fromkeys([*policy.thresholds, *baseline.metrics, *policy.recorded_metrics])),
            sampled=list(baseline.metrics),
            sample_seconds=baseline.sample_seconds,
            namespace=policy.namespace,
            canary_version=self._request.version,
            stable_version=self._status.stable_version,
        )
        try:
            return await self._interruptible(observe_metrics, request, "read canary metrics", timedelta(minutes=1), heartbeat=HEARTBEAT)
        except ActivityError as error:
            self._note(f"metrics unavailable: {_cause(error)}")
            return Observation(window_seconds=0, canary=VersionMetrics(), stable=VersionMetrics(), cursor=self._cursor)

    def _record(self, analysis: Analysis) -> None:
        self._status.last_analysis = analysis
        self._note(f"analysis {analysis.verdict.value}: {analysis.summary}")
        workflow.set_current_details(self._details())

    # --- production gates: calendar and live activity ------------------------------------

    async def _gate_production_change(self, change: str) -> None:
        """Hold a production change until the deployment calendar allows it (or glass
        is broken) and no uploads, processing jobs or client sessions are live; give up
        on live activity after the policy's bound, naming what was still active."""
        if self._status.gates is None:
            return
        policy = self._request.policy
        while True:
            if not await self._calendar_allows(change):
                continue
            live = await self._live_activity(change)
            if live is None:
                break
            busy_since = self._progress.gate_busy_since = self._progress.gate_busy_since or workflow.now()
            waited = (workflow.now() - busy_since).total_seconds()
            if waited >= policy.live_activity_wait_seconds:
                raise ReleaseStopped(Outcome.FAILED, f"{change} held {waited:.0f}s for live activity, still active: {live}")
            self._hold_for(GateHold(gate="live_activity", change=change, reason=live))
            await self._hold(lambda: False, workflow.now() + timedelta(seconds=policy.live_activity_recheck_seconds))
        self._progress.gate_busy_since = None
        if self._status.hold is not None:
            self._note(f"{change}: gates clear")
            self._status.hold = None

    async def _calendar_allows(self, change: str) -> bool:
        """True when the calendar allows `change` now. Otherwise fail, or wait until the
        window opens (or glass is broken) and return False so that the caller re-checks."""
        if self._status.break_glass is not None:
            return True
        try:
            verdict = await self._interruptible(
                check_calendar, CalendarRequest(ref=self._ref(), at=workflow.now()), "check the deployment calendar", timedelta(seconds=30)
            )
        except ActivityError as error:
            # A gates file broken mid-edit must not roll back every release at a gate: hold and re-read.
            self._hold_for(GateHold(gate="window", change=change, reason=f"calendar unreadable: {_cause(error)}"))
            retry_at = workflow.now() + timedelta(seconds=self._request.policy.live_activity_recheck_seconds)
            await self._hold(lambda: self._status.break_glass is not None, retry_at)
            return False
        if verdict.open:
            return True
        policy = self._request.policy
        if policy.outside_window is OutsideWindow.FAIL or verdict.opens_at is None:
            opens = f"; next window {_iso(verdict.opens_at)}" if verdict.opens_at else ""
            raise ReleaseStopped(Outcome.FAILED, f"{change} not allowed now: {verdict.reason}{opens}")
        wait = (verdict.opens_at - workflow.now()).total_seconds()
        if self._status.canary_weight > 0 and wait > policy.max_canary_hold_seconds:
            # A canary half-rolled for days, analysed every interval, is neither safe nor
            # within a workflow history's size: take it back and release again in the window.
            raise ReleaseStopped(
                Outcome.FAILED,
                f"{change} not allowed now: {verdict.reason}; the next window ({_iso(verdict.opens_at)}) is "
                f"{wait / 3600:.1f} h away, more than a live canary may be held ({policy.max_canary_hold_seconds / 3600:g} h)",
            )
        self._hold_for(GateHold(gate="window", change=change, reason=verdict.reason, until=_iso(verdict.opens_at)))
        await self._hold(lambda: self._status.break_glass is not None, verdict.opens_at)
        return False

    async def _live_activity(self, change: str) -> str | None:
        """What is live on the platform, or None when nothing is. An endpoint that
        cannot be read counts as live: unknown is never clear."""
        try:
            report = await self._interruptible(
                check_live_activity, self._ref(), f"check live activity before {change}", timedelta(seconds=30), heartbeat=HEARTBEAT
            )
        except ActivityError as error:
            return f"unknown ({_cause(error)})"
        return None if report.clear else report.detail

    def _hold_for(self, hold: GateHold) -> None:
        """Show why a production change waits; tell the webhooks when the reason changes."""
        if self._status.hold != hold:
            message = f"{hold.change} held by {hold.gate.replace('_', ' ')}: {hold.why()}"
            self._status.hold = hold
            self._note(message)
            self._notify(NotificationEvent.HELD, message)
            workflow.set_current_details(self._details())

    # --- continue-as-new ----------------------------------------------------------------

    async def _continue_if_history_long(self) -> None:
        """Before the history grows past what the server allows, go on in a new run
        that carries everything the release needs. Never while stopping (the rollback
        comes first) or while an update is being answered."""
        info = workflow.info()
        if info.get_current_history_length() < CONTINUE_AS_NEW_EVENTS and not info.is_continue_as_new_suggested():
            return
        if self._stop is not None or not workflow.all_handlers_finished():
            return
        await self._drain_notifications()
        self._note(f"history at {info.get_current_history_length()} events: continuing in a new run")
        carried = Continuation(
            request=self._request,
            status=self._status,
            progress=self._progress,
            touched=sorted(self._touched),
            memory=self._memory,
            cursor=self._cursor,
            analysed_at=self._analysed_at,
            traffic_sequence=self._traffic_sequence,
            notifications=self._notifications,
            lock_guarded=self._lock_guarded,
        )
        self._status.continued_runs += 1
        self._continuing = True
        workflow.continue_as_new(args=[self._request.model_dump(mode="json"), carried.model_dump(mode="json")])

    def _resume(self, carried: Continuation) -> ReleaseRequest:
        self._continued = True
        self._status = carried.status
        self._progress = carried.progress
        self._touched = set(carried.touched)
        self._memory = carried.memory
        self._cursor = carried.cursor
        self._analysed_at = carried.analysed_at
        self._traffic_sequence = carried.traffic_sequence
        self._notifications = carried.notifications
        self._lock_guarded = carried.lock_guarded
        self._canary_may_get_traffic = Slot.CANARY in self._touched
        self._note(f"continued from run {workflow.info().continued_run_id}")
        return carried.request

    # --- activity plumbing ---------------------------------------------------------------

    async def _change(
        self,
        activity: Callable,
        arg: Any,
        summary: str,
        *,
        retry: RetryPolicy = CHANGE_RETRIES,
        timeout: timedelta = timedelta(minutes=2),
    ) -> Any:
        """Run an activity that changes the world. It is idempotent, heartbeats, and runs
        to the end even if the release is stopped meanwhile; a failure after retries
        fails the release."""
        try:
            return await workflow.execute_activity(activity, arg, **_activity_options(summary, timeout, retry, HEARTBEAT))
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {_cause(error)}") from None

    async def _read(self, activity: Callable, arg: Any, summary: str, *, timeout: timedelta = timedelta(minutes=1)) -> Any:
        """Run an activity that waits or measures; a failure after retries fails the release."""
        try:
            return await self._interruptible(activity, arg, summary, timeout)
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {_cause(error)}") from None

    async def _interruptible(
        self,
        activity: Callable,
        arg: Any,
        summary: str,
        timeout: timedelta,
        *,
        retry: RetryPolicy = READ_RETRIES,
        heartbeat: timedelta | None = None,
    ) -> Any:
        """Run an activity that a kill switch or rejection abandons at once."""
        handle = workflow.start_activity(activity, arg, **_activity_options(summary, timeout, retry, heartbeat))
        await workflow.wait_condition(lambda: handle.done() or self._stop is not None)
        if not handle.done():
            handle.cancel()
            raise self._stop
        return handle.result()

    # --- waiting -------------------------------------------------------------------------

    async def _wait_for(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until `condition` holds (True) or `timeout` seconds pass (False).
        A kill switch or rejection ends the wait by stopping the release."""
        try:
            await workflow.wait_condition(lambda: self._stop is not None or condition(), timeout=timeout)
            met = True
        except asyncio.TimeoutError:
            met = False
        if self._stop is not None:
            raise self._stop
        return met

    async def _sleep(self, seconds: float) -> None:
        await self._wait_for(lambda: False, seconds)

    async def _hold(self, condition: Callable[[], bool], deadline: datetime | None = None) -> bool:
        """Wait until `condition` holds (True) or `deadline` passes (False). A live
        canary keeps being analysed every analysis interval meanwhile."""
        interval = self._request.policy.analysis_interval_seconds
        while not condition():
            await self._continue_if_history_long()
            remaining = None if deadline is None else (deadline - workflow.now()).total_seconds()
            if remaining is not None and remaining <= 0:
                return False
            if self._analysed_at is None:  # no canary has been analysed: none is live
                await self._wait_for(condition, remaining)
                continue
            until_analysis = interval - (workflow.now() - self._analysed_at).total_seconds()
            if until_analysis <= 0:
                await self._analyse()
            elif remaining is not None and remaining < until_analysis:
                await self._wait_for(condition, remaining)
            elif not await self._wait_for(condition, until_analysis):
                await self._analyse()
        return True

    # --- status bookkeeping --------------------------------------------------------------

    def _enter(self, phase: Phase, message: str, **notification: Any) -> None:
        self._status.phase = phase
        self._note(message)
        workflow.upsert_search_attributes([search_attributes.PHASE.value_set(phase.value)])
        workflow.set_current_details(self._details())
        self._notify(PHASE_EVENT.get(phase, NotificationEvent.PHASE), message, **notification)

    # --- notifications -------------------------------------------------------------------

    def _notify(self, event: NotificationEvent, message: str, **fields: Any) -> None:
        """Tell every webhook that wants `event`, without waiting: a slow or failing
        webhook never holds a release up. Failures are kept in status."""
        gates = self._status.gates
        webhooks = [name for name, events in (gates.webhooks if gates else {}).items() if event in events]
        if not webhooks:
            return
        self._notifications += 1
        notification = Notification(
            event=event,
            sequence=self._notifications,
            release_id=self._status.release_id,
            service=self._request.service,
            version=self._request.version,
            phase=self._status.phase,
            at=self._now(),
            message=message,
            **fields,
        )
        for webhook in webhooks:
            request = NotifyRequest(ref=self._ref(), webhook=webhook, notification=notification)
            self._deliveries.append(asyncio.create_task(self._deliver(request)))

    async def _deliver(self, request: NotifyRequest) -> None:
        summary = f"notify {request.webhook}: {request.notification.event.value}"
        try:
            await workflow.execute_activity(notify, request, **_activity_options(summary, timedelta(seconds=30), NOTIFY_RETRIES))
        except ActivityError as error:
            failure = f"{request.notification.at} {summary} #{request.notification.sequence} failed: {_cause(error)}"
            self._status.notification_failures = [*self._status.notification_failures, failure][-TIMELINE_LIMIT:]
            workflow.logger.warning(failure, extra={"release_id": self._status.release_id, "service": self._request.service})

    async def _drain_notifications(self) -> None:
        """Give the last notifications a bounded chance to go out before the release closes."""
        if any(not delivery.done() for delivery in self._deliveries):
            try:
                await workflow.wait_condition(
                    lambda: all(delivery.done() for delivery in self._deliveries), timeout=NOTIFY_DRAIN_SECONDS
                )
            except asyncio.TimeoutError:
                self._note("closing with notifications still undelivered")

    def _note(self, message: str) -> None:
        message = bounded(message, TIMELINE_MESSAGE_LIMIT)
        entry = TimelineEntry(at=self._now(), phase=self._status.phase, message=message)
        self._status.timeline = [*self._status.timeline, entry][-TIMELINE_LIMIT:]
        workflow.logger.info(
            message,
            extra={"release_id": self._status.release_id, "service": self._status.service, "phase": self._status.phase.value},
        )

    def _ignore(self, message: str) -> None:
        message = bounded(message)
        self._status.ignored_signals = [*self._status.ignored_signals, message][-TIMELINE_LIMIT:]
        self._note(f"ignored {message}")

    def _details(self) -> str:
        status = self._status
        lines = [f"**{status.phase.value}**: {status.service} {status.version}", f"canary traffic: {status.canary_weight}%"]
        if status.pending_approval:
            deadline = f" until {status.approval_deadline}" if status.approval_deadline else ""
            lines.append(f"waiting for **{status.pending_approval.value}** approval{deadline}")
        if status.hold:
            lines.append(f"**held** by {status.hold.gate}: {status.hold.why()}")
        if status.break_glass:
            lines.append(f"**break-glass** by {status.break_glass.actor}: {status.break_glass.reason}")
        if status.paused:
            lines.append("**paused**")
        if status.last_analysis:
            lines.append(f"last analysis: {status.last_analysis.verdict.value}: {status.last_analysis.summary}")
        return "\n\n".join(lines)

    def _parse_signal(self, name: str, model: type, payloads: tuple[Any, ...], *, optional: bool = False) -> Any:
        """Signals come from people and scripts: a malformed one is recorded and ignored."""
        try:
            return parse_one(model, payloads, optional=optional)
        except Malformed as malformed:
            self._ignore(f"{name}: {malformed}")
            return None

    def _can_stop(self, name: str, actor: str, problem: str | None = None) -> bool:
        """Whether a stop order still has something to stop. One whose payload was
        malformed stops all the same; the problem is recorded beside it."""
        if problem is not None:
            self._note(f"{name} from {actor}: {problem}; honoured all the same")
        if self._promoted or self._status.outcome is not None:
            self._ignore(f"{name} from {actor}: the release is already {'promoted' if self._promoted else 'over'}")
            return False
        if self._stop is not None:
            self._ignore(f"{name} from {actor}: the release is already stopping ({self._stop.reason})")
            return False
        return True

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
        return ApprovalReceipt(stage=stage, counted=counted, approvals=given, required=gate.min_approvals, message=message)

    def _break_glass_refusal(self, glass: BreakGlass) -> str | None:
        if self._status.outcome is not None or self._promoted:
            return "the release is already over" if self._status.outcome else "the release is already promoted"
        gates = self._status.gates
        return approvals.break_glass_refusal(glass.actor, gates.break_glass if gates else None)

    def _record_break_glass(self, glass: BreakGlass) -> BreakGlassRecord:
        if self._status.break_glass is None:
            self._status.break_glass = BreakGlassRecord(actor=glass.actor, reason=glass.reason, at=self._now())
            self._note(f"BREAK-GLASS by {glass.actor}: {glass.reason}; the deployment calendar no longer holds this release")
            workflow.set_current_details(self._details())
        return self._status.break_glass

    def _ref(self) -> ServiceRef:
        return ServiceRef(
            release_id=self._status.release_id, service=self._request.service, target=self._request.target, phase=self._status.phase
        )

    def _traffic(self, weight: int, *, segments: bool) -> TrafficRequest:
        policy = self._request.policy
        self._traffic_sequence += 1
        return TrafficRequest(
            ref=self._ref(),
            sequence=self._traffic_sequence,
            canary_weight=weight,
            segments_to_canary=segments,
            segment_header=policy.segment_header,
            canary_segments=policy.canary_segments,
        )

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="seconds")


PHASE_EVENT = {Phase.ROLLBACK: NotificationEvent.ROLLBACK, Phase.DONE: NotificationEvent.FINISHED}


def _parse_update(model: type, payloads: tuple[Any, ...]) -> Any:
    """An update's payload, or a rejection (not worth retrying) that names each bad field."""
    try:
        return parse_one(model, payloads)
    except Malformed as malformed:
        raise ApplicationError(str(malformed), type="MalformedUpdate", non_retryable=True) from None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _parse_iso(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment)


def _activity_options(summary: str, timeout: timedelta, retry: RetryPolicy, heartbeat: timedelta | None = None) -> dict[str, Any]:
    """Options shared by every activity of a release. A long one must heartbeat, so a
    dead worker is noticed in seconds, not at the end of its timeout."""
    return {
        "start_to_close_timeout": timeout,
        "heartbeat_timeout": heartbeat or (HEARTBEAT if timeout > LONG_ACTIVITY else None),
        "retry_policy": retry,
        "summary": summary,
    }


def _cause(error: BaseException | None) -> str:
    """The innermost message of an activity failure, which is the one that explains it."""
    while error is not None and error.__cause__ is not None:
        error = error.__cause__
    return str(error)
