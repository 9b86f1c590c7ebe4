"""Deploying, routing and watching: the new version on the target, its share of
traffic, and the analysis of each window."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import deploy_version, observe_metrics, set_traffic, wait_ready
    from pipeline.decisions.analysis import judge, judge_bake
    from pipeline.decisions.rules import Action, decide
    from pipeline.models import (
        Analysis,
        BaselinePolicy,
        DeployRequest,
        Observation,
        ObserveRequest,
        Outcome,
        Phase,
        ServiceRef,
        Slot,
        TrafficRequest,
        VersionMetrics,
    )

from workflows.release.calls import CHANGE_RETRIES, HEARTBEAT, TRAFFIC_TIMEOUT, cause
from workflows.release.stopped import ReleaseStopped
from workflows.release.waiting import only_time


class Traffic:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _deploy(self, slot: Slot) -> None:
        self._touched.add(slot)
        deploy = DeployRequest(ref=self._ref(), slot=slot, version=self._request.version, env=self._request.env)
        await self._change(deploy_version, deploy, f"deploy {self._request.version} to {slot.value}")
        # A version that will never be ready fails at once (a permanent error); retried like
        # a change is a lost worker, or a heartbeat late on a saturated one (which failed 3
        # of 200 concurrent releases in #15's benchmark with a read's three attempts).
        await self._read(
            wait_ready,
            deploy,
            f"wait until {slot.value} {self._request.version} is ready",
            timeout=timedelta(minutes=10),
            retry=CHANGE_RETRIES,
        )

    async def _route(self, weight: int) -> None:
        """Send `weight` percent of traffic (and the canary segments) to the new version.
        A paused release holds its traffic where it is. A kill switch or rejection
        does not wait for the change: it is abandoned, and the rollback's change, newer
        in sequence, wins at the target even if the abandoned one lands later."""
        await self._wait_until(lambda: not self._status.paused)
        self._canary_may_get_traffic = True
        summary = f"route {weight}% to {self._request.version}"
        try:
            await self._interruptible(
                set_traffic,
                self._traffic(weight, segments=True),
                summary,
                TRAFFIC_TIMEOUT,
                retry=CHANGE_RETRIES,
                heartbeat=HEARTBEAT,
            )
        except ActivityError as error:
            raise ReleaseStopped(Outcome.FAILED, f"{summary} failed: {cause(error)}") from None
        self._status.canary_weight = weight
        self._note(f"{weight}% of traffic on {self._request.version}")

    async def _watch(self, seconds: int) -> None:
        """Analyse every interval for `seconds`, and beyond while paused or while the
        last check did not let traffic advance (a failure within its budget or severity,
        an inconclusive or marginal check, too few consecutive passes). A light release
        reads one interval after the previous read started, not after its analysis
        ended: the time an analysis takes does not push the next one back, and no window
        is shorter than an interval (a cadence fixed to the watch's start can read a
        window of a fraction of one after a late read, too small to judge)."""
        interval = self._request.policy.analysis_interval_seconds
        read_at = workflow.now()
        if self._progress.watch_elapsed == 0:
            self._cursor = (await self._observe()).cursor
        action = None
        while self._progress.watch_elapsed < seconds or self._status.paused or action is not Action.ADVANCE:
            await self._continue_if_history_long()
            if self._is_light():
                await self._wait_until(only_time, interval - (workflow.now() - read_at).total_seconds())
            else:
                await self._wait_until(only_time, interval)
            self._progress.watch_elapsed += interval
            read_at = workflow.now()
            action = await self._analyse()
        self._progress.watch_elapsed = 0

    async def _analyse(self) -> Action:
        """One analysis over the window since the last one, and what it calls for:
        a rollback stops the release; a pause waits for a human's resume or kill switch."""
        policy = self._request.policy
        observation = await self._observe()
        self._cursor = observation.cursor
        baking = self._status.phase is Phase.BAKE
        with workflow.unsafe.imports_passed_through(), workflow.unsafe.sandbox_unrestricted():
            # SciPy imports lazily and reads the environment as it does; its test is deterministic
            if baking:
                analysis = judge_bake(observation, self._status.before_release, policy, at=self._now())
            else:
                analysis = judge(
                    observation, policy, phase=self._status.phase, canary_weight=self._status.canary_weight, at=self._now()
                )
        decision, self._memory = decide(analysis, self._memory, policy)
        self._analysed_at = workflow.now()
        self._record(analysis.model_copy(update={"decision": f"{decision.action.value}: {decision.reason}"}))
        if decision.action is Action.ROLLBACK:
            where = " during bake" if baking else f" at {analysis.canary_weight}% canary traffic"
            where = where if decision.breach else ""
            raise ReleaseStopped(Outcome.ROLLED_BACK, f"{decision.reason}{where}", decision.breach)
        if decision.action is Action.PAUSE and not self._status.paused:
            self._status.paused = True
            self._note(decision.reason)
        await self._analyse_consistency()
        return decision.action

    async def _observe(self, cursor: dict | None = None) -> Observation:
        """Metrics since `cursor` (by default the last analysis'). A provider that cannot
        be read gives an empty observation, which analysis counts as inconclusive, never
        as healthy."""
        policy = self._request.policy
        cursor = self._cursor if cursor is None else cursor
        baseline = policy.baseline or BaselinePolicy()
        request = ObserveRequest(
            ref=self._ref(),
            cursor=cursor,
            provider=policy.metrics_provider,
            queries=policy.queries,
            metrics=list(dict.fromkeys([*policy.thresholds, *baseline.metrics, *policy.recorded_metrics])),
            sampled=baseline.sampled_metrics(),
            sample_seconds=baseline.sample_seconds,
            namespace=policy.namespace,
            canary_version=self._request.version,
            stable_version=self._status.stable_version,
            at=workflow.now(),
        )
        try:
            return await self._quick_read(
                observe_metrics, request, "read canary metrics", timedelta(minutes=1), heartbeat=HEARTBEAT
            )
        except ActivityError as error:
            self._note(f"metrics unavailable: {cause(error)}")
            return Observation(window_seconds=0, canary=VersionMetrics(), stable=VersionMetrics(), cursor=cursor)

    def _record(self, analysis: Analysis) -> None:
        self._status.last_analysis = analysis
        self._note(f"analysis {analysis.verdict.value}: {analysis.summary}")
        workflow.set_current_details(self._details())

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

    def _ref(self) -> ServiceRef:
        return ServiceRef(
            release_id=self._status.release_id,
            service=self._request.service,
            target=self._request.target,
            phase=self._status.phase,
        )
