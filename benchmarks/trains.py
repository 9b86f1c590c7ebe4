"""Benchmark of issue #12's targets for release trains:

- a train of 5 services with default policies (30 min canaries, four 5 min steps,
  canary and production approvals, given once for the whole train), simulated on the
  time-skipping server with the sim target: under 10 s of wall time;
- the train's kill switch to every member's traffic on stable at the local router:
  under 2 s, from the signal until a beta photographer's request (which a live canary
  always serves) to each member is served by its stable version, on the real local
  stack with every member in its canary.

    .venv/bin/python -m benchmarks.trains [--runs 3] [--members 3] [--part sim|kill|both]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from benchmarks.common import QUICK, bench_environment, report, run_benchmark
from pipeline.http import http_client
from pipeline.local.devstack import Stack, installed_binary, local_stack
from pipeline.models import Outcome, TrainResult
from pipeline.sim.fleet import worker_fleet
from pipeline.sim.scenario import Scenario
from pipeline.simulate import register_search_attributes, runtime_logging_to_python
from workers.main import build_worker
from workflows.release import ReleaseWorkflow
from workflows.train import ReleaseTrainWorkflow

TASK_QUEUE = "bench-trains"
SIM_TRAIN = [("shoot", []), ("upload", []), ("gallery", ["shoot", "upload"]), ("prints", ["gallery"]),
             ("search", ["gallery"])]
"""Five services, two layers deep: the train's default max_parallel (2) is used at each layer."""
SIM_POLICY = {"test_suites": []}
"""The default policy; the sim target runs no test suites."""
SIMULATED_TIMEOUT_SECONDS = 120
STALL_SECONDS = 0.5
STALL_PACE = 4
"""Simulated time that moves less than 4 times as fast as the wall clock for half a
second has stalled (the stalled test server runs timers in real time)."""
KILL_POLICY = {**QUICK, "canary_duration_seconds": 300, "analysis_interval_seconds": 5, "steps": [100],
               "min_requests": 1}
"""Canaries that last: the kill switch, not the analysis, ends them."""


async def depart(client: Client, train: dict[str, Any], task_queue: str) -> WorkflowHandle:
    return await client.start_workflow(
        ReleaseTrainWorkflow.run, train, id=f"bench-train-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
        result_type=TrainResult,
    )


# --- (a) a simulated train --------------------------------------------------------------------------


async def approve_for_the_train(handle: WorkflowHandle) -> None:
    """Per-train approvals, given as soon as the train runs (members use them as they reach each stage)."""
    for stage in ("canary", "production"):
        await handle.signal(ReleaseTrainWorkflow.approve, {"stage": stage, "approver": "bench"})


async def next_timer(client: Client, workflow_id: str) -> datetime | None:
    """When the earliest timer the workflow has pending fires, from its history."""
    pending: dict[str, datetime] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started = event.timer_started_event_attributes
            fires = event.event_time.ToDatetime(tzinfo=timezone.utc) + started.start_to_fire_timeout.ToTimedelta()
            pending[started.timer_id] = fires
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            pending.pop(event.timer_fired_event_attributes.timer_id, None)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            pending.pop(event.timer_canceled_event_attributes.timer_id, None)
    return min(pending.values(), default=None)


async def skip_a_stall(env: WorkflowEnvironment, handle: WorkflowHandle) -> bool:
    """The test server's time skipping stalls now and then with a train (a child and its
    timer, a signal to the parent; see tests/test_train_workflow.py): when nothing is in
    flight, skip to the running members' next timer by hand. True if it skipped."""
    status = await handle.query(ReleaseTrainWorkflow.status)
    running = [m.workflow_id for m in status.members if m.state in ("running", "reverting") and m.workflow_id]
    for workflow_id in running:
        if (await env.client.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities:
            return False
    timers = [fires for workflow_id in running if (fires := await next_timer(env.client, workflow_id))]
    if not timers:
        return False
    skip = max(min(timers) - await env.get_current_time(), timedelta(0)) + timedelta(milliseconds=10)
    await asyncio.wait_for(env.sleep(skip), STALL_SECONDS * 10)
    return True


async def through_stalls(env: WorkflowEnvironment, handle: WorkflowHandle) -> tuple[TrainResult, int]:
    """The train's result, and how many stalls were skipped by hand on the way."""
    result = asyncio.ensure_future(handle.result())
    skipped, last = 0, await env.get_current_time()
    async with asyncio.timeout(SIMULATED_TIMEOUT_SECONDS):
        while not (await asyncio.wait({result}, timeout=STALL_SECONDS))[0]:
            now = await env.get_current_time()
            if now - last < STALL_PACE * timedelta(seconds=STALL_SECONDS) and await skip_a_stall(env, handle):
                skipped += 1
            last = await env.get_current_time()
    return result.result(), skipped


@asynccontextmanager
async def simulation(services: list[str]) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server and a worker on this process's sim fleet, where each
    service runs 1.0.0."""
    fleet = worker_fleet()
    fleet.reset(Scenario())
    for service in services:
        fleet.install(service, "1.0.0")
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=installed_binary("temporal-test-server"),
        runtime=runtime_logging_to_python(),
    )
    async with env:
        await register_search_attributes(env.client)
        async with build_worker(env.client, TASK_QUEUE):
            yield env


async def simulated_train() -> tuple[float, TrainResult, int]:
    """Wall seconds for a train of five default-policy members on a fresh time-skipping server."""
    members = [{"service": s, "version": "2.0.0", "depends_on": needs, "policy": SIM_POLICY} for s, needs in SIM_TRAIN]
    train = {"train": "bench", "target": "sim", "releases": members, "policy": {"approvals": "per_train"}}
    async with simulation([service for service, _ in SIM_TRAIN]) as env:
        began = time.monotonic()
        handle = await depart(env.client, train, TASK_QUEUE)
        await approve_for_the_train(handle)
        result, skipped = await through_stalls(env, handle)
        return time.monotonic() - began, result, skipped


async def simulated_release() -> float:
    """For comparison: wall seconds for one default-policy release, alone, approved up front."""
    request = {"service": "shoot", "version": "2.0.0", "target": "sim", "policy": {**SIM_POLICY, "required_approvals": []}}
    async with simulation(["shoot"]) as env:
        began = time.monotonic()
        handle = await env.client.start_workflow(ReleaseWorkflow.run, request, id="bench-one", task_queue=TASK_QUEUE)
        result = await asyncio.wait_for(handle.result(), SIMULATED_TIMEOUT_SECONDS)
        assert result.outcome is Outcome.PROMOTED, result.reason
        return time.monotonic() - began


# --- (b) the kill switch at the local router ----------------------------------------------------------


async def on_stable(stack: Stack, service: str, stable: str) -> bool:
    async with http_client(base_url=stack.local.http_url, timeout=2) as http:
        response = await http.get("/api/photos", headers={"Host": f"{service}.localhost", "X-User-Type": "beta-photographer"})
    return response.headers.get("X-Served-Version") == stable


async def until_canaries_serve(stack: Stack, handle: WorkflowHandle, services: list[str]) -> None:
    async with asyncio.timeout(120):
        while True:
            status = await handle.query(ReleaseTrainWorkflow.status)
            if all(m.canary_weight > 0 for m in status.members):
                if not any([await on_stable(stack, service, "1.0.0") for service in services]):
                    return
            await asyncio.sleep(0.2)


async def kill_switch_to_stable(stack: Stack, services: list[str], version: str) -> float:
    members = [{"service": s, "version": version, "policy": KILL_POLICY} for s in services]
    train = {"train": "bench-kill", "target": "local", "releases": members, "policy": {"max_parallel": len(services)}}
    handle = await depart(stack.client, train, stack.task_queue)
    await until_canaries_serve(stack, handle, services)
    began = time.monotonic()
    await handle.signal(ReleaseTrainWorkflow.kill_switch, {"actor": "bench", "reason": "benchmark"})
    pending = set(services)
    async with asyncio.timeout(30):
        while pending:
            pending = {service for service in pending if not await on_stable(stack, service, "1.0.0")}
    elapsed = time.monotonic() - began
    result = await handle.result()
    assert result.outcome is Outcome.ROLLED_BACK, result.reason
    return elapsed


async def install_firsts(stack: Stack, services: list[str]) -> None:
    handles = [
        await stack.client.start_workflow(
            ReleaseWorkflow.run, {"service": s, "version": "1.0.0", "policy": QUICK}, id=f"bench-{s}-1.0.0",
            task_queue=stack.task_queue,
        )
        for s in services
    ]
    for handle in handles:
        await handle.result()


async def simulated_trains(runs: int) -> None:
    simulated, stalled = [], 0
    for run in range(runs):
        try:
            seconds, result, skipped = await asyncio.wait_for(simulated_train(), SIMULATED_TIMEOUT_SECONDS + 30)
        except TimeoutError:
            stalled += 1
            print(f"run {run + 1}: stalled: the test server's time skipping stopped for good "
                  f"({SIMULATED_TIMEOUT_SECONDS} s)", flush=True)
            continue
        assert result.outcome is Outcome.PROMOTED, result.reason
        simulated.append(seconds)
        print(f"run {run + 1}: simulated train of {len(SIM_TRAIN)} promoted in {seconds:.2f} s "
              f"({skipped} stalls of the test server's time skipping skipped by hand)", flush=True)
    if simulated:
        report(f"train of {len(SIM_TRAIN)} services, default policies, simulated", simulated, "< 10 s")
    print(f"stalled runs: {stalled} of {runs}", flush=True)
    alone = [await simulated_release() for _ in range(runs)]
    report("for comparison, one default-policy release alone, simulated", alone, "none")


async def kill_switches(runs: int, members: int) -> None:
    services = [f"svc-{index}" for index in range(members)]
    killed = []
    async with local_stack(bench_environment(), task_queue=TASK_QUEUE) as stack:
        await install_firsts(stack, services)
        for run in range(runs):
            killed.append(await kill_switch_to_stable(stack, services, f"2.{run}.0"))
            print(f"run {run + 1}: train kill switch, {members} members on stable in {killed[-1]:.3f} s", flush=True)
    report(f"train kill switch to every member's traffic on stable ({members} members)", killed, "< 2 s")


async def main(runs: int, members: int, part: str) -> None:
    if part in ("sim", "both"):
        await simulated_trains(runs)
    if part in ("kill", "both"):
        await kill_switches(runs, members)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--part", choices=["sim", "kill", "both"], default="both")
    run_benchmark(main, parser)
