"""FeatureRolloutWorkflow: one feature flag, from dark to on for everyone (ADR-017's
ProgressiveFeatureManager, issue #13).

Top to bottom: validate the input, read the gates (as a release does, for the
`service`), read the flag (defining it dark if it is new), wait for the canary
approval, serve the flag's on variant to the segments and hold that under analysis,
wait for the production approval, then serve it to each step's percentage of users,
each held and analysed: `enabled` when the last step (100%) holds healthy.

A breach, the kill switch, a rejection or a flag turned off out of band ends the
rollout with the flag off (the store's change is the kill switch: services read it
within a second, no deploy). The workflow decides; activities touch the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import kill_flag, load_gates
    from pipeline.decisions import approvals
    from pipeline.decisions.flags import parse_rollout, variant_problems
    from pipeline.decisions.validation import InvalidRequest
    from pipeline.models import AnalysisMemory, Phase, Stage
    from pipeline.models.flag_rollout import FeatureRolloutStatus
    from pipeline.models.flags import (
        FeatureRolloutRequest,
        FeatureRolloutResult,
        FlagKillRequest,
        FlagOutcome,
        FlagSetting,
    )
    from workflows.payloads import Malformed, bounded, parse_one, read_stop_order

from workflows.flags.steps import STORE_TIMEOUT, Steps
from workflows.flags.stopped import RolloutStopped
from workflows.release.approvals import Approvals
from workflows.release.calls import READ_RETRIES, READ_TIMEOUT, ROLLBACK_RETRIES, activity_options, cause

TIMELINE_LIMIT = 200


@workflow.defn
class FeatureRolloutWorkflow(Steps, Approvals):
    @workflow.init
    def __init__(self, *inputs: Any) -> None:
        self._request: FeatureRolloutRequest | None = None
        self._status = FeatureRolloutStatus(rollout_id=workflow.info().workflow_id, flag="", environment="")
        self._stop: RolloutStopped | None = None
        self._memory = AnalysisMemory()
        self._sequence = 0
        self._since_revision = 0
        self._exposed = False
        """The flag may have served its on variant to someone: a stop turns it off."""
        self._stopped_by: str | None = None

    @workflow.run
    async def run(self, *inputs: Any) -> FeatureRolloutResult:
        self._request = self._validate(inputs)
        request = self._request
        self._status.flag, self._status.environment = request.flag, request.environment
        try:
            await self._prepare()
            if request.segments:
                await self._approval(Stage.CANARY)
                self._status.phase = "segments"
                await self._apply(FlagSetting(segments=request.segments), "serve the flag to its segments")
                await self._hold(request.segment_hold_seconds, analysed=True, phase=Phase.CANARY, percentage=1)
            await self._approval(Stage.PRODUCTION)
            self._status.phase = "percentage"
            for step in request.steps:
                await self._check_store()
                await self._apply(FlagSetting(segments=request.segments, percentage=step.percentage),
                                  f"serve the flag to {step.percentage}% of users")
                await self._hold(step.hold_seconds, analysed=step.analysis, phase=Phase.PROGRESSIVE_SHIFT,
                                 percentage=step.percentage)
            return self._finish(FlagOutcome.ENABLED, f"{request.flag} serves {request.on_variant!r} to everyone")
        except RolloutStopped as stop:
            await self._turn_off(stop)
            return self._finish(stop.outcome, stop.reason)

    @workflow.signal
    def reject(self, *payloads: Any) -> None:
        """Stop the rollout, flag off. Honoured whatever its payload; what could not be read is recorded."""
        self._order_stop("reject", payloads, "approver", "comment", FlagOutcome.REJECTED,
                         f"rejected at {self._status.phase} by")

    @workflow.signal
    def kill_switch(self, *payloads: Any) -> None:
        """The flag off everywhere now, whatever the payload says."""
        self._order_stop("kill_switch", payloads, "actor", "reason", FlagOutcome.ROLLED_BACK, "kill switch pulled by")

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        self._ignore(f"{bounded(name, 100)}: no such signal")

    @workflow.query
    def status(self) -> FeatureRolloutStatus:
        return self._status

    def _validate(self, inputs: tuple[Any, ...]) -> FeatureRolloutRequest:
        """Malformed input fails the rollout at once, naming each bad field; nothing was touched."""
        try:
            if len(inputs) != 1:
                raise InvalidRequest([f"input: expected one feature rollout request, got {len(inputs)}"],
                                     "feature rollout request")
            return parse_rollout(inputs[0])
        except InvalidRequest as invalid:
            raise ApplicationError(str(invalid), type="InvalidRequest", non_retryable=True) from None

    async def _prepare(self) -> None:
        """The gates for the service, and the flag as it is now: its revision is the one a
        later kill is compared with; a new flag is defined dark (off for everyone)."""
        try:
            self._status.gates = await self._interruptible(
                load_gates, self._service_ref(), "read the release gates", READ_TIMEOUT, READ_RETRIES)
        except ActivityError as error:
            raise RolloutStopped(FlagOutcome.FAILED, f"reading the gates failed: {cause(error)}") from None
        state = await self._read_flag()
        request = self._request
        problems = variant_problems(state, request.variants, request.on_variant, request.off_variant)
        if problems:
            raise RolloutStopped(FlagOutcome.FAILED, "; ".join(problems), already_off=True)
        self._since_revision = state.revision
        self._note(f"{request.flag} in {request.environment}: "
                   + (f"serving {state.serving.value}, revision {state.revision}" if state.exists else "new"))
        if not state.exists:
            await self._apply(FlagSetting(), f"define {request.flag} dark")

    async def _approval(self, stage: Stage) -> None:
        """Wait for the stage's approvers until the deadline; the store is re-read meanwhile."""
        gates, request = self._status.gates, self._request
        if not approvals.stage_required(gates, request.required_approvals, stage) or self._approved(stage):
            return
        gate = approvals.stage_gate(gates, stage)
        who = "any approver" if gate.anyone else f"{gate.min_approvals} of {', '.join(gate.approvers)}"
        deadline = workflow.now() + timedelta(seconds=request.approval_timeout_seconds)
        self._status.phase, self._status.pending_approval = f"{stage.value}_approval", stage
        self._status.approval_deadline = deadline.isoformat(timespec="seconds")
        self._note(f"waiting for {stage.value} approval ({who}) until {self._status.approval_deadline}")
        while not self._approved(stage):
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                raise RolloutStopped(FlagOutcome.EXPIRED, f"{stage.value} approval not given by "
                                                          f"{self._status.approval_deadline}")
            try:
                await workflow.wait_condition(lambda: self._approved(stage) or self._stop is not None,
                                              timeout=timedelta(seconds=min(remaining, request.analysis.interval_seconds)))
            except TimeoutError:
                await self._check_store()
            self._check_stop()
        self._status.pending_approval = self._status.approval_deadline = None

    async def _turn_off(self, stop: RolloutStopped) -> None:
        """Off for everyone, recorded as killed, once anyone may have seen the flag on.
        Never given up: a flag stuck on after a rollback is the one outcome not allowed."""
        if stop.already_off or not self._exposed:
            return
        self._status.phase = "rollback"
        actor = self._stopped_by or self._actor()
        request = FlagKillRequest(ref=self._flag_ref(), actor=actor, reason=bounded(stop.reason, 2000),
                                  rollout_id=self._status.rollout_id, release_id=self._request.release_id)
        try:
            await workflow.execute_activity(kill_flag, request,
                                            **activity_options("turn the flag off", STORE_TIMEOUT, ROLLBACK_RETRIES))
        except ActivityError as error:  # only a non-retryable failure ends the retries: the store is broken
            stop.outcome, stop.reason = FlagOutcome.FAILED, f"{stop.reason}; turning the flag off failed: {cause(error)}"
            return
        self._status.setting = FlagSetting()
        self._note(f"{self._request.flag} turned off: {stop.reason}")

    def _finish(self, outcome: FlagOutcome, reason: str) -> FeatureRolloutResult:
        self._status.outcome, self._status.reason, self._status.phase = outcome, reason, "done"
        self._status.pending_approval = self._status.approval_deadline = None
        self._note(f"{outcome.value}: {reason}")
        return FeatureRolloutResult(outcome=outcome, flag=self._request.flag, environment=self._request.environment,
                                    reason=reason, setting=self._status.setting, analyses=self._status.analyses)

    def _order_stop(self, signal: str, payloads: tuple[Any, ...], actor_field: str, text_field: str,
                    outcome: FlagOutcome, what: str) -> None:
        order = read_stop_order(payloads, actor_field, text_field)
        if self._can_stop(signal, order.actor, order.problem):
            self._stop = RolloutStopped(outcome, f"{what} {order.actor}" + (f": {order.text}" if order.text else ""))
            self._stopped_by = order.actor

    def _can_stop(self, signal: str, actor: str, problem: str | None) -> bool:
        if problem is not None:
            self._ignore(f"{signal} from {actor}: {problem} (honoured anyway)")
        if self._status.outcome is not None or self._stop is not None:
            self._ignore(f"{signal} from {actor}: the rollout is already " + (
                "over" if self._status.outcome else "stopping"))
            return False
        return True

    def _parse_signal(self, name: str, model: type, payloads: tuple[Any, ...]) -> Any:
        try:
            return parse_one(model, payloads)
        except Malformed as malformed:
            self._ignore(f"{name}: {malformed}")
            return None

    def _actor(self) -> str:
        return f"rollout {self._status.rollout_id}"

    def _note(self, message: str) -> None:
        entry = f"{self._now()} [{self._status.phase}] {bounded(message)}"
        self._status.timeline = [*self._status.timeline, entry][-TIMELINE_LIMIT:]
        workflow.logger.info(message, extra={"rollout_id": self._status.rollout_id, "flag": self._status.flag})

    def _ignore(self, message: str) -> None:
        message = bounded(message)
        self._status.ignored_signals = [*self._status.ignored_signals, message][-TIMELINE_LIMIT:]
        self._note(f"ignored {message}")

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="seconds")
