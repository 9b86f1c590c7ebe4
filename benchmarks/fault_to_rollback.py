"""Benchmark of issue #3's target: from a fault reaching canary traffic to all traffic
on stable, at most one analysis interval plus 2 s (5 s interval, local target).

Each run releases a canary that answers half its requests with 500s
(GALLERY_ERROR_RATE=0.5) under steady load. The clock starts when the router sends
the faulty canary its share of traffic and stops when a request that only a live
canary would serve (the beta-photographer segment) is served by stable. Metrics come
from the local Prometheus when one is on PATH (the PromQL path), else from Traefik.

    .venv/bin/python -m benchmarks.fault_to_rollback [--runs 10] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from benchmarks.common import QUICK, SERVICE, bench_environment, install_first_release, report, run_benchmark, served_by_canary
from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.prometheus import find_prometheus
from tests.helpers.local import free_port
from workflows.release import ReleaseWorkflow


def policy(provider: str, interval: int) -> dict:
    return {
        **QUICK,
        "metrics_provider": provider,
        "analysis_interval_seconds": interval,
        "canary_duration_seconds": 600,
        "min_requests": 5,
    }


async def one_run(stack: Stack, http: httpx.AsyncClient, version: str, release_policy: dict) -> float:
    request = {"service": SERVICE, "version": version, "env": {"GALLERY_ERROR_RATE": "0.5"}, "policy": release_policy}
    handle = await stack.client.start_workflow(ReleaseWorkflow.run, request, id=f"bench-{version}", task_queue=stack.task_queue)
    while (await handle.query(ReleaseWorkflow.status)).canary_weight == 0:
        await asyncio.sleep(0.02)
    began = time.perf_counter()
    while await served_by_canary(http):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    result = await handle.result()
    assert result.outcome.value == "rolled_back" and result.breach is not None, result
    return elapsed


async def main(runs: int, interval: int) -> None:
    local = bench_environment()
    provider = "prometheus" if find_prometheus() else "traefik"
    prometheus_port = free_port() if provider == "prometheus" else None
    timings = []
    async with (
        local_stack(local, prometheus_port=prometheus_port) as stack,
        LoadGenerator(local.http_url, SERVICE, rate_per_second=40, segment_every=10),
        httpx.AsyncClient(base_url=local.http_url, timeout=2) as http,
    ):
        await install_first_release(stack)
        for run in range(runs):
            timings.append(await one_run(stack, http, f"2.0.{run}", policy(provider, interval)))
            print(f"run {run + 1}: {timings[-1]:.2f} s", flush=True)
    report(f"fault to all traffic on stable ({provider} metrics, {interval} s interval)", timings, f"<= {interval + 2} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=int, default=5)
    run_benchmark(main, parser)
