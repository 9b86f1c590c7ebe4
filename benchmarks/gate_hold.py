"""Benchmark of issue #5: how soon a production change held for live activity goes
ahead once the platform reports it clear (live_activity_recheck_seconds = 1 s).

Each run raises uploads on the stable gallery, starts a release and waits until it
is held before its canary; the clock starts when the uploads are cleared and stops
when a request that only a live canary would serve (the beta-photographer segment)
reaches the new version. The kill switch then ends the run.

    .venv/bin/python -m benchmarks.gate_hold [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from benchmarks.common import QUICK, SERVICE, bench_environment, install_first_release, report, run_benchmark, served_by_canary
from pipeline.local.devstack import Stack, local_stack, set_live_activity
from workflows.release import ReleaseWorkflow

RECHECK_SECONDS = 1
POLICY = {**QUICK, "live_activity_recheck_seconds": RECHECK_SECONDS, "canary_duration_seconds": 3600, "analysis_interval_seconds": 60}


async def one_run(stack: Stack, http: httpx.AsyncClient, version: str) -> float:
    await set_live_activity(stack, SERVICE, active_uploads=3)
    request = {"service": SERVICE, "version": version, "policy": POLICY}
    handle = await stack.client.start_workflow(ReleaseWorkflow.run, request, id=f"bench-{version}", task_queue=stack.task_queue)
    while (await handle.query(ReleaseWorkflow.status)).hold is None:
        await asyncio.sleep(0.05)
    began = time.perf_counter()
    await set_live_activity(stack, SERVICE, active_uploads=0)
    while not await served_by_canary(http):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "benchmark run over", "actor": "bench"})
    await handle.result()
    return elapsed


async def main(runs: int) -> None:
    local = bench_environment()
    timings = []
    async with local_stack(local) as stack, httpx.AsyncClient(base_url=local.http_url, timeout=2) as http:
        await install_first_release(stack)
        for run in range(runs):
            timings.append(await one_run(stack, http, f"2.0.{run}"))
    report("uploads cleared to canary traffic", timings, f"<= recheck {RECHECK_SECONDS} s + 1 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    run_benchmark(main, parser)
