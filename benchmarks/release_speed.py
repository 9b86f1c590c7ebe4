"""Benchmarks of issue #2's targets; prints its figures (no assertions: timing
belongs here, not in tests).

  1. A full default rollout (30-minute canary watch, four 5-minute steps, approvals)
     on the time-skipping test server: wall time of the workflow's decisions.
  2. From a `kill_switch` signal to all traffic on stable at the local router
     (Traefik), measured on the real local stack with requests that only a live
     canary would serve (the beta-photographer segment).

    .venv/bin/python -m benchmarks.release_speed [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from benchmarks.common import QUICK, SERVICE, bench_environment, install_first_release, report, run_benchmark, served_by_canary
from pipeline.local.devstack import installed_binary, local_stack
from tests.helpers.fakes import FakeWorld
from tests.helpers.harness import REQUEST, Drive, register_search_attributes
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow


async def full_default_rollout_seconds() -> float:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=installed_binary("temporal-test-server")
    )
    async with env:
        await register_search_attributes(env.client)
        async with Worker(env.client, task_queue="bench", workflows=WORKFLOWS, activities=FakeWorld().activities()):
            drive = Drive(env)
            began = time.perf_counter()
            handle = await env.client.start_workflow(ReleaseWorkflow.run, REQUEST, id=f"bench-{uuid.uuid4()}", task_queue="bench")
            await drive.approve(handle, "canary")
            await drive.approve(handle, "production")
            result = await handle.result()
            elapsed = time.perf_counter() - began
    assert result.outcome.value == "promoted", result
    return elapsed


async def kill_switch_seconds(runs: int) -> list[float]:
    policy = {**QUICK, "canary_duration_seconds": 3600, "analysis_interval_seconds": 60}
    timings = []
    local = bench_environment()
    async with local_stack(local) as stack, httpx.AsyncClient(base_url=local.http_url, timeout=2) as http:
        await install_first_release(stack)
        for run in range(runs):
            request = {"service": SERVICE, "version": f"2.0.{run}", "policy": policy}
            handle = await stack.client.start_workflow(ReleaseWorkflow.run, request, id=f"bench-2.0.{run}", task_queue=stack.task_queue)
            while (await handle.query(ReleaseWorkflow.status)).canary_weight != 10:
                await asyncio.sleep(0.05)
            began = time.perf_counter()
            await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "benchmark", "actor": "bench"})
            while await served_by_canary(http):
                await asyncio.sleep(0.01)
            timings.append(time.perf_counter() - began)
            await handle.result()
    return timings


async def main(runs: int) -> None:
    rollout = await full_default_rollout_seconds()
    print(f"full default rollout on the time-skipping server: {rollout:.2f} s wall (target < 5 s)")
    report("kill_switch to all traffic on stable at the router", await kill_switch_seconds(runs), "< 2 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    run_benchmark(main, parser)
