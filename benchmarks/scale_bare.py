"""The bare-Temporal shape the scale benchmark (benchmarks/scale.py) sets a release
against: the same production changes and analyses at the same policy's times, as
no-op activities and plain timers (and no-op activities where a release does its
chores: gates, preflight, staging, readiness, retirement), with a `status` query; nothing judged, nothing
recorded. Its activities carry the pipeline's names so both histories read alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

NOOP_TIMEOUT = timedelta(seconds=30)


@dataclass
class BareShape:
    canary_duration_seconds: int
    analysis_interval_seconds: int
    steps: list[int]
    step_interval_seconds: int
    bake_seconds: int


@activity.defn(name="set_traffic")
async def set_traffic(weight: int) -> int:
    return weight


@activity.defn(name="observe_metrics")
async def observe_metrics(weight: int) -> dict[str, float]:
    return {"error_rate": 0.0, "p95_latency_ms": 40.0, "weight": float(weight)}


@activity.defn(name="deploy_version")
async def deploy_version(slot: str) -> str:
    return slot


BARE_ACTIVITIES = [set_traffic, observe_metrics, deploy_version]


@workflow.defn
class BareRelease:
    def __init__(self) -> None:
        self._phase = "start"
        self._analyses = 0

    @workflow.run
    async def run(self, shape: BareShape) -> int:
        for chore in ["gates", "preflight", "staging", "staging ready", "staging stopped", "notify"]:
            await self._call(deploy_version, chore)
        await self._gates()
        await self._call(deploy_version, "canary")
        await self._call(deploy_version, "canary ready")
        await self._phase_of("canary", 10, shape.canary_duration_seconds, shape)
        for weight in shape.steps:
            await self._gates()
            await self._phase_of(f"step {weight}", weight, shape.step_interval_seconds, shape)
        await self._gates()
        await self._call(deploy_version, "promote")
        await self._phase_of("bake", 100, shape.bake_seconds, shape, route=False)
        await self._call(deploy_version, "retire")
        return self._analyses

    async def _gates(self) -> None:
        """A production change's gates: the calendar and live activity."""
        await self._call(deploy_version, "calendar")
        await self._call(deploy_version, "live activity")

    @workflow.query
    def status(self) -> dict[str, object]:
        return {"phase": self._phase, "analyses": self._analyses}

    async def _phase_of(self, name: str, weight: int, seconds: int, shape: BareShape, route: bool = True) -> None:
        self._phase = name
        if route:
            await self._call(set_traffic, weight)
        await self._call(observe_metrics, weight)
        for _ in range(seconds // shape.analysis_interval_seconds):
            await workflow.sleep(shape.analysis_interval_seconds)
            await self._call(observe_metrics, weight)
            self._analyses += 1

    async def _call(self, function: object, argument: object) -> object:
        return await workflow.execute_activity(function, argument, start_to_close_timeout=NOOP_TIMEOUT)
