"""The rollout's steps: apply a stage to the flag store, hold it with an analysis every
interval, and re-read the store before each step and at each analysis, so a flag turned
off out of band (`releasectl flags off` while the worker was down) ends the rollout.

Each analysis asks `observe_metrics` for the service's metrics split by the flag's
variant (ObserveRequest.flag: on as canary, off as baseline) and judges them with the
release engine (pipeline/decisions/analysis.py and rules.py): thresholds, severities,
no data = inconclusive, the baseline comparison."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import apply_flag_stage, observe_metrics, read_flag_state
    from pipeline.decisions.analysis import judge
    from pipeline.decisions.rules import Action, decide
    from pipeline.flags.document import serving
    from pipeline.models import BaselinePolicy, Observation, ObserveRequest, Phase, ServiceRef, VersionMetrics
    from pipeline.models.flags import (
        FlagComparison,
        FlagOutcome,
        FlagRef,
        FlagSetting,
        FlagStageRequest,
        FlagState,
        Serving,
    )

from workflows.flags.stopped import RolloutStopped
from workflows.release.calls import CHANGE_RETRIES, READ_RETRIES, READ_TIMEOUT, activity_options, cause

STORE_TIMEOUT = timedelta(seconds=30)
OBSERVE_TIMEOUT = timedelta(minutes=1)


def error_type(error: BaseException) -> str | None:
    return getattr(error.__cause__, "type", None)


class Steps:
    """Part of FeatureRolloutWorkflow (see workflows/flags/workflow.py), kept apart by concern."""

    async def _apply(self, setting: FlagSetting, why: str) -> FlagState:
        """Serve `setting`. A kill from outside since the rollout started is never undone:
        the store refuses the stage and the rollout ends rolled back."""
        self._check_stop()
        request = self._request
        self._sequence += 1
        stage = FlagStageRequest(
            ref=self._flag_ref(), variants=request.variants, on_variant=request.on_variant,
            off_variant=request.off_variant, setting=setting, actor=self._actor(), reason=why,
            rollout_id=self._status.rollout_id, release_id=request.release_id, sequence=self._sequence,
            since_revision=self._since_revision,
        )
        # set before the write: a stop that abandons the activity must still turn the flag off
        self._exposed = self._exposed or serving(setting) is not Serving.OFF
        try:
            state = await self._interruptible(apply_flag_stage, stage, why, STORE_TIMEOUT, CHANGE_RETRIES)
        except ActivityError as error:
            if error_type(error) == "FlagKilled":
                raise RolloutStopped(FlagOutcome.ROLLED_BACK, cause(error), already_off=True) from None
            raise RolloutStopped(FlagOutcome.FAILED, f"{why} failed: {cause(error)}") from None
        self._status.setting = setting
        self._note(f"{request.flag} serves {request.on_variant!r} to {_describe(setting)}")
        return state

    async def _hold(self, seconds: int, *, analysed: bool, phase: Phase, percentage: int) -> None:
        """Hold the stage `seconds`, and beyond while the last analysis did not let the
        rollout advance; re-read the store at each interval."""
        interval = self._request.analysis.interval_seconds
        if seconds == 0:
            await self._check_store()
            return
        policy = self._request.analysis.policy(seconds)
        cursor = (await self._observe({})).cursor if analysed else {}
        elapsed, action = 0, None
        while elapsed < seconds or (analysed and action is not Action.ADVANCE):
            await self._sleep(min(interval, seconds))
            elapsed += min(interval, seconds)
            await self._check_store()
            if analysed:
                action, cursor = await self._analyse(policy, cursor, phase, percentage)
            else:
                action = Action.ADVANCE

    async def _analyse(self, policy: Any, cursor: dict, phase: Phase, percentage: int) -> tuple[Action, dict]:
        observation = await self._observe(cursor)
        with workflow.unsafe.imports_passed_through(), workflow.unsafe.sandbox_unrestricted():
            # SciPy imports lazily and reads the environment as it does; its test is deterministic
            analysis = judge(observation, policy, phase=phase, canary_weight=percentage, at=self._now())
        decision, self._memory = decide(analysis, self._memory, policy)
        self._status.last_analysis = analysis.model_copy(update={"decision": f"{decision.action.value}: {decision.reason}"})
        self._status.analyses += 1
        self._note(f"analysis {analysis.verdict.value} ({self._request.on_variant} against "
                   f"{self._request.off_variant}): {analysis.summary}")
        if decision.action is Action.ROLLBACK:
            raise RolloutStopped(FlagOutcome.ROLLED_BACK, f"{decision.reason} at {_describe(self._status.setting)}")
        if decision.action is Action.PAUSE:
            self._note(f"{decision.reason}: holding until the checks conclude or the kill switch is pulled")
        return decision.action, observation.cursor

    async def _observe(self, cursor: dict) -> Observation:
        """The service's metrics since `cursor`, on variant as canary and off as stable.
        A provider that cannot be read gives an empty observation: inconclusive, never healthy."""
        analysis = self._request.analysis
        baseline = analysis.baseline or BaselinePolicy()
        request = ObserveRequest(
            ref=self._service_ref(), cursor=cursor, provider=analysis.metrics_provider, queries=analysis.queries,
            metrics=list(dict.fromkeys([*analysis.thresholds, *baseline.metrics, *analysis.recorded_metrics])),
            sampled=baseline.sampled_metrics(), sample_seconds=baseline.sample_seconds, namespace=analysis.namespace,
            flag=FlagComparison(flag=self._request.flag, on_variant=self._request.on_variant,
                                off_variant=self._request.off_variant, environment=self._request.environment),
        )
        try:
            return await self._interruptible(observe_metrics, request, "read metrics by variant", OBSERVE_TIMEOUT,
                                             READ_RETRIES)
        except ActivityError as error:
            self._note(f"metrics unavailable: {cause(error)}")
            return Observation(window_seconds=0, canary=VersionMetrics(), stable=VersionMetrics(), cursor=cursor)

    async def _read_flag(self) -> FlagState:
        try:
            return await self._interruptible(read_flag_state, self._flag_ref(), "read the flag", READ_TIMEOUT,
                                             READ_RETRIES)
        except ActivityError as error:
            raise RolloutStopped(FlagOutcome.FAILED, f"reading {self._request.flag} failed: {cause(error)}") from None

    async def _check_store(self) -> None:
        """Ends the rollout if the flag was turned off since it started."""
        state = await self._read_flag()
        if state.killed and (state.killed_revision or 0) > self._since_revision:
            reason = state.kill_reason or "no reason given"
            raise RolloutStopped(
                FlagOutcome.ROLLED_BACK, f"{state.flag} was turned off by {state.changed_by or 'someone'}: {reason}",
                already_off=True,
            )
        if not state.exists:
            raise RolloutStopped(FlagOutcome.FAILED, f"{state.flag} was removed from the {state.environment} store",
                                 already_off=True)

    async def _interruptible(self, activity: Any, arg: Any, summary: str, timeout: timedelta, retry: Any) -> Any:
        """An activity the kill switch or a rejection abandons at once. Abandoned, not
        cancelled: these reads and fenced writes are safe to let finish, and a cancel of an
        activity not yet started sometimes left the test server's workflow task open."""
        handle = workflow.start_activity(activity, arg, **activity_options(summary, timeout, retry),
                                         cancellation_type=workflow.ActivityCancellationType.ABANDON)
        await workflow.wait_condition(lambda: handle.done() or self._stop is not None)
        if not handle.done():
            handle.cancel()
            raise self._stop
        return handle.result()

    async def _sleep(self, seconds: float) -> None:
        """Wait, unless a stop order arrives first."""
        try:
            await workflow.wait_condition(lambda: self._stop is not None, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            pass
        self._check_stop()

    def _check_stop(self) -> None:
        if self._stop is not None:
            raise self._stop

    def _flag_ref(self) -> FlagRef:
        return FlagRef(flag=self._request.flag, environment=self._request.environment, target=self._request.target)

    def _service_ref(self) -> ServiceRef:
        return ServiceRef(release_id=self._status.rollout_id, service=self._request.service,
                          target=self._request.target, phase=Phase.CANARY)


def _describe(setting: FlagSetting) -> str:
    who = [f"segments {', '.join(setting.segments)}"] if setting.segments else []
    if setting.percentage or not who:
        who.append(f"{setting.percentage}% of users")
    return " and ".join(who)
