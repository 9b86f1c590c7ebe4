"""Scale benchmark (issue #15): N concurrent releases on the sim target against the dev
server, side by side with a bare-Temporal workflow of the same shape (benchmarks/
scale_bare.py) in the same run, one after the other on the same server and worker
process. Prints, per N and kind: wall time, releases per second, the lateness of each
analysis and traffic step against the policy's plan (p50, p95, max), the `status`
query's latency while they run, the worker's and the server's CPU and peak memory,
and history events, activities (ordinary + local) and workflow tasks per release.

    .venv/bin/python -m benchmarks.scale [--n 50 200] [--expect-all promoted]

Lateness is read from each history: the plan starts at the canary's traffic change;
phase k (canary, each step, bake) is planned at the sum of the policy's durations
before it; the i-th analysis of a phase (not counting the read that opens its window)
at the phase's planned start plus i analysis intervals; each step at its phase's
planned start. The worker runs in this process (the production worker: sandbox and
all), so its CPU includes the benchmark's own starts, queries and history reads.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psutil
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from benchmarks.common import run_benchmark
from benchmarks.scale_bare import BARE_ACTIVITIES, BareRelease, BareShape
from pipeline.local_activities import completed_local_activity, scheduled_activities
from pipeline.models import Outcome
from pipeline.sim.fleet import worker_fleet
from pipeline.sim.scenario import Scenario
from tests.helpers.harness import start_dev_server
from workers.main import build_worker
from workflows.release import ReleaseWorkflow

FAST = {
    "canary_weight": 10, "canary_duration_seconds": 10, "analysis_interval_seconds": 2, "steps": [50, 100],
    "step_interval_seconds": 4, "bake_seconds": 4, "retire_delay_seconds": 0, "required_approvals": [],
    "test_suites": [], "min_requests": 1, "recorded_metrics": [],
}
"""22 s of timers: a 10 s canary, two 4 s steps and a 4 s bake, analysed every 2 s."""
SHAPE = BareShape(
    canary_duration_seconds=FAST["canary_duration_seconds"], analysis_interval_seconds=FAST["analysis_interval_seconds"],
    steps=FAST["steps"], step_interval_seconds=FAST["step_interval_seconds"], bake_seconds=FAST["bake_seconds"],
)
PHASE_STARTS = {"set_traffic", "promote_version", "promote_canary"}
SAMPLE_SECONDS = 0.5
QUERIES_PER_SAMPLE = 3


@dataclass
class Run:
    kind: str
    n: int
    wall: float = 0.0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    worker_rss: int = 0
    server_rss: int = 0
    query_ms: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    activities: list[int] = field(default_factory=list)
    local_activities: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    """Why releases ended other than promoted (a completed bare run has none)."""


# --- reading a history ------------------------------------------------------------------------


def plan_lateness(events: list[Any]) -> list[float]:
    """Seconds each analysis and traffic step came after its planned time."""
    scheduled = scheduled_activities(events)
    durations = [SHAPE.canary_duration_seconds, *[SHAPE.step_interval_seconds] * len(SHAPE.steps), SHAPE.bake_seconds]
    lateness: list[float] = []
    anchor: datetime | None = None
    phase, analyses = -1, 0
    for name, at in scheduled:
        if name in PHASE_STARTS and phase + 1 < len(durations):
            phase, analyses = phase + 1, -1
            anchor = anchor or at
            if phase > 0:
                lateness.append((at - planned(anchor, durations, phase, 0)).total_seconds())
        elif name == "observe_metrics" and anchor is not None:
            analyses += 1
            if analyses > 0:
                lateness.append((at - planned(anchor, durations, phase, analyses)).total_seconds())
    return lateness


def planned(anchor: datetime, durations: list[int], phase: int, analysis: int) -> datetime:
    return anchor + timedelta(seconds=sum(durations[:phase]) + analysis * SHAPE.analysis_interval_seconds)


def count(events: list[Any], kind: int) -> int:
    return sum(1 for event in events if event.event_type == kind)


# --- running N of one kind --------------------------------------------------------------------


class Sampler:
    """CPU and peak memory of this process and the server, and the status query's latency."""

    def __init__(self, server: psutil.Process):
        self.me, self.server = psutil.Process(), server
        self.peak = [0, 0]

    def cpu(self) -> tuple[float, float]:
        return sum(self.me.cpu_times()[:2]), sum(self.server.cpu_times()[:2])

    async def watch(self, run: Run, running: list[WorkflowHandle], stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.peak = [max(self.peak[0], self.me.memory_info().rss), max(self.peak[1], self.server.memory_info().rss)]
            for handle in random.sample(running, min(QUERIES_PER_SAMPLE, len(running))):
                began = time.monotonic()
                try:
                    await handle.query("status")
                    run.query_ms.append((time.monotonic() - began) * 1000)
                except Exception:  # a release that just finished: its query replays or is refused; not a sample
                    pass
            try:
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
            except TimeoutError:
                pass


async def run_many(run: Run, client: Client, sampler: Sampler, start: Callable[[int], Awaitable[WorkflowHandle]]) -> None:
    cpu_before, began, stop = sampler.cpu(), time.monotonic(), asyncio.Event()
    sampler.peak = [0, 0]
    handles = list(await asyncio.gather(*(start(index) for index in range(run.n))))
    watcher = asyncio.create_task(sampler.watch(run, handles, stop))
    results = await asyncio.gather(*(handle.result() for handle in handles))
    run.wall = time.monotonic() - began
    stop.set()
    await watcher
    cpu_after = sampler.cpu()
    run.worker_cpu, run.server_cpu = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
    run.worker_rss, run.server_rss = sampler.peak
    run.outcomes.update(result.outcome.value if hasattr(result, "outcome") else "completed" for result in results)
    run.reasons.update(result.reason for result in results if getattr(result, "outcome", Outcome.PROMOTED) is not Outcome.PROMOTED)
    limit = asyncio.Semaphore(20)

    async def read(handle: WorkflowHandle) -> None:
        async with limit:
            events = list((await handle.fetch_history()).events)
        run.events.append(len(events))
        run.activities.append(count(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED))
        run.local_activities.append(sum(completed_local_activity(event) is not None for event in events))
        run.tasks.append(count(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))
        run.lateness.extend(plan_lateness(events))

    await asyncio.gather(*(read(handle) for handle in handles))


async def pipeline_run(client: Client, sampler: Sampler, n: int, tag: str) -> Run:
    fleet = worker_fleet()
    fleet.reset(Scenario(requests_per_second=20))
    services = [f"scale-{tag}-{index}" for index in range(n)]
    for service in services:
        fleet.install(service, "1.0.0")
    run = Run("pipeline", n)
    queue = f"scale-release-{tag}"

    async def start(index: int) -> WorkflowHandle:
        request = {"service": services[index], "version": "2.0.0", "target": "sim", "policy": FAST}
        return await client.start_workflow(ReleaseWorkflow.run, request, id=f"{services[index]}-2.0.0", task_queue=queue)

    async with build_worker(client, queue):
        await run_many(run, client, sampler, start)
    return run


async def bare_run(client: Client, sampler: Sampler, n: int, tag: str) -> Run:
    run, queue = Run("bare", n), f"scale-bare-{tag}"

    async def start(index: int) -> WorkflowHandle:
        return await client.start_workflow(BareRelease.run, SHAPE, id=f"bare-{tag}-{index}", task_queue=queue)

    async with Worker(client, task_queue=queue, workflows=[BareRelease], activities=BARE_ACTIVITIES):
        await run_many(run, client, sampler, start)
    return run


# --- output -----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def row(run: Run) -> list[str]:
    late, query = run.lateness, run.query_ms
    return [
        run.kind, str(run.n), f"{run.wall:.1f}", f"{run.n / run.wall:.1f}",
        f"{percentile(late, .5):.2f}/{percentile(late, .95):.2f}/{max(late, default=float('nan')):.2f}",
        f"{percentile(query, .5):.0f}/{percentile(query, .95):.0f}",
        f"{run.worker_cpu:.1f}", f"{run.server_cpu:.1f}", f"{run.worker_rss >> 20}", f"{run.server_rss >> 20}",
        f"{statistics.mean(run.events):.0f}", f"{statistics.mean(run.activities):.0f}+{statistics.mean(run.local_activities):.0f}", f"{statistics.mean(run.tasks):.0f}",
        " ".join(f"{outcome}:{number}" for outcome, number in sorted(run.outcomes.items())),
    ]


HEADERS = ["kind", "N", "wall s", "rel/s", "late p50/p95/max s", "query p50/p95 ms", "worker cpu s", "server cpu s",
           "worker MB", "server MB", "events", "activities+local", "wf tasks", "outcomes"]


def ratio_line(pipeline: Run, bare: Run) -> str:
    return (f"N={pipeline.n}: wall {pipeline.wall / bare.wall:.2f}x, lateness p95 "
            f"{percentile(pipeline.lateness, .95):.2f} s vs {percentile(bare.lateness, .95):.2f} s, worker CPU "
            f"{pipeline.worker_cpu / bare.worker_cpu:.2f}x, events {statistics.mean(pipeline.events) / statistics.mean(bare.events):.2f}x")


async def main(n: list[int], expect_all: str | None) -> None:
    from pipeline.terminal import render_table

    env = await start_dev_server()
    async with env:
        server = next(child for child in psutil.Process().children(recursive=True) if "temporal" in child.name())
        sampler, rows, ratios, problems = Sampler(server), [], [], []
        for size in n:
            tag = f"{size}-{int(time.time())}"
            pipeline = await pipeline_run(env.client, sampler, size, tag)
            bare = await bare_run(env.client, sampler, size, tag)
            rows += [row(pipeline), row(bare)]
            ratios.append(ratio_line(pipeline, bare))
            if expect_all and pipeline.outcomes[expect_all] != size:
                problems.append(f"N={size}: outcomes {dict(pipeline.outcomes)}, expected all {expect_all}; why: "
                                + "; ".join(f"{count} x {reason}" for reason, count in pipeline.reasons.most_common(5)))
            print(render_table(HEADERS, rows[-2:]), "\n", ratios[-1], flush=True)
        print("\n" + render_table(HEADERS, rows))
        print("\n".join(ratios + problems), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[50], help="numbers of concurrent releases (default: 50)")
    parser.add_argument("--expect-all", default=Outcome.PROMOTED.value, help="the outcome every release should have")
    run_benchmark(main, parser)
