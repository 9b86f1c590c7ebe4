"""Benchmark of issue #12's targets for release trains:

- a train of 5 services (two layers of dependencies) with default policies (30 min
  canaries, four 5 min steps, canary and production approvals, given once for the whole
  train), simulated on the time-skipping server: under 10 s of wall time. Measured on
  TrainWorld's fake activities (as benchmarks.release_speed times one release on
  FakeWorld), and on the real activities with the sim target; a run that stalls (the
  test server stops skipping time now and then with a train) is counted, not timed;
- the train's kill switch to every member's traffic on stable at the local router:
  under 2 s, from the signal until a beta photographer's request (which a live canary
  always serves) to each member is served by its stable version, on the real local
  stack with every member in its canary.

    .venv/bin/python -m benchmarks.trains [--runs 3] [--members 3] [--part fake|sim|kill|both]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from benchmarks.common import QUICK, bench_environment, report, run_benchmark
from pipeline.http import http_client
from pipeline.local.devstack import Stack, installed_binary, local_stack
from pipeline.models import Outcome, TrainResult
from pipeline.sim.fleet import worker_fleet
from pipeline.sim.scenario import Scenario
from pipeline.simulate import register_search_attributes, runtime_logging_to_python
from tests.helpers.train_world import TrainWorld
from workers.main import build_worker
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow
from workflows.train import ReleaseTrainWorkflow

TASK_QUEUE = "bench-trains"
SIM_TRAIN = [("shoot", []), ("upload", []), ("gallery", ["shoot", "upload"]), ("prints", ["gallery"]),
             ("search", ["gallery"])]
"""Five services, two layers deep: the train's default max_parallel (2) is used at each layer."""
SIMULATED_TIMEOUT_SECONDS = 90
"""A simulated train not over by then has stalled: the test server's time skipping stops
now and then with a train's children (see tests/test_train_workflow.py)."""
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


@asynccontextmanager
async def simulation(services: list[str], world: str) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server and a worker whose activities act on `world`: "fake",
    TrainWorld (as benchmarks.release_speed times a release on FakeWorld), or "sim", the
    real activities on this process's sim fleet, where each service runs 1.0.0."""
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
        if world == "fake":
            worker = Worker(env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=TrainWorld().activities())
        else:
            worker = build_worker(env.client, TASK_QUEUE)
        async with worker:
            yield env


def default_policy(world: str) -> dict[str, Any]:
    """The default policy; the sim target runs no test suites."""
    return {"test_suites": []} if world == "sim" else {}


async def simulated_train(world: str) -> tuple[float, TrainResult]:
    """Wall seconds for a train of five default-policy members on a fresh time-skipping server."""
    members = [{"service": s, "version": "2.0.0", "depends_on": needs, "policy": default_policy(world)}
               for s, needs in SIM_TRAIN]
    train = {"train": "bench", "target": "sim" if world == "sim" else "local", "releases": members,
             "policy": {"approvals": "per_train"}}
    async with simulation([service for service, _ in SIM_TRAIN], world) as env:
        began = time.monotonic()
        handle = await depart(env.client, train, TASK_QUEUE)
        await approve_for_the_train(handle)
        result = await asyncio.wait_for(handle.result(), SIMULATED_TIMEOUT_SECONDS)
        return time.monotonic() - began, result


async def simulated_release(world: str) -> float:
    """For comparison: wall seconds for one default-policy release, alone, approved up front."""
    policy = {**default_policy(world), "required_approvals": []}
    request = {"service": "shoot", "version": "2.0.0", "target": "sim" if world == "sim" else "local", "policy": policy}
    async with simulation(["shoot"], world) as env:
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


async def simulated_trains(runs: int, world: str) -> None:
    simulated, stalled = [], 0
    for run in range(runs):
        try:
            seconds, result = await simulated_train(world)
        except TimeoutError:
            stalled += 1
            print(f"run {run + 1} ({world}): stalled: the test server stopped skipping time "
                  f"(no end within {SIMULATED_TIMEOUT_SECONDS} s)", flush=True)
            continue
        assert result.outcome is Outcome.PROMOTED, result.reason
        simulated.append(seconds)
        print(f"run {run + 1} ({world}): train of {len(SIM_TRAIN)} promoted in {seconds:.2f} s", flush=True)
    if simulated:
        report(f"train of {len(SIM_TRAIN)} services, default policies, on the time-skipping server ({world} world)",
               simulated, "< 10 s")
    print(f"stalled runs ({world}): {stalled} of {runs}", flush=True)
    alone = [await simulated_release(world) for _ in range(runs)]
    report(f"for comparison, one default-policy release alone ({world} world)", alone, "none")


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
    for world in ("fake", "sim"):
        if part in (world, "both"):
            await simulated_trains(runs, world)
    if part in ("kill", "both"):
        await kill_switches(runs, members)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--part", choices=["fake", "sim", "kill", "both"], default="both")
    run_benchmark(main, parser)
