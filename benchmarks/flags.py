"""Benchmark of issue #13's targets on the real local stack (the Temporal dev server, a
worker, Traefik, a local Prometheus and gallery processes that read their flags through
OpenFeature's flagd file resolver), under 50 req/s from 1,000 users:

- kill switch to the last request served with the flag on, at the router: under 1 s.
  Three ways: the `kill_switch` signal to a FeatureRolloutWorkflow holding the flag at
  100%; the store write that `releasectl flags off` makes (pipeline.flags.changes.kill,
  from the call); and the `releasectl flags off` command itself (its process start-up
  included);
- fractional rollout accuracy: the share of 4,000 user keys served the on variant
  through the router at 10, 25, 50 and 75%: within 2 points of each.

    .venv/bin/python -m benchmarks.flags [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from benchmarks.common import SERVICE, bench_environment, install_first_release, report, run_benchmark
from pipeline.flags.changes import kill
from pipeline.gallery.flags import LAYOUT_FLAG
from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.prometheus import find_prometheus
from pipeline.models.flags import FlagKillRequest, FlagOutcome, FlagRef
from tests.helpers.flags import Stages, all_served_on, last_served_on, served_once_reloaded, share_on, store, utc_now
from tests.helpers.local import free_port
from workflows.flags import FeatureRolloutWorkflow

PERCENTAGES = (10, 25, 50, 75)
TOLERANCE_POINTS = 2.0
ROLLOUT = {
    "flag": LAYOUT_FLAG, "service": SERVICE, "variants": {"on": True, "off": False}, "segments": [],
    "steps": [{"percentage": 100, "hold_seconds": 600}], "required_approvals": [],
    "analysis": {"interval_seconds": 5, "min_requests": 5},
}


async def signal_to_last_on(stack: Stack, load: LoadGenerator) -> float:
    handle = await stack.client.start_workflow(
        FeatureRolloutWorkflow.run, ROLLOUT, id=f"bench-rollout-{uuid.uuid4().hex[:6]}", task_queue=stack.task_queue
    )
    await all_served_on(load, LAYOUT_FLAG)
    began = time.monotonic()
    await handle.signal(FeatureRolloutWorkflow.kill_switch, {"reason": "benchmark", "actor": "bench"})
    seconds = await last_served_on(load, LAYOUT_FLAG, began)
    result = await handle.result()
    assert result.outcome is FlagOutcome.ROLLED_BACK, result.reason
    return seconds


async def store_write_to_last_on(stack: Stack, load: LoadGenerator) -> float:
    await Stages().serve(stack, LAYOUT_FLAG, 100)
    await all_served_on(load, LAYOUT_FLAG)
    began = time.monotonic()
    await kill(store(stack), FlagKillRequest(ref=FlagRef(flag=LAYOUT_FLAG), actor="bench", reason="benchmark"), utc_now())
    return await last_served_on(load, LAYOUT_FLAG, began)


async def command_to_last_on(stack: Stack, load: LoadGenerator) -> float:
    await Stages().serve(stack, LAYOUT_FLAG, 100)
    await all_served_on(load, LAYOUT_FLAG)
    began = time.monotonic()
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeline.cli", "flags", "off", LAYOUT_FLAG, "--reason", "benchmark", "--actor", "bench",
        env={**os.environ, "PIPELINE_LOCAL_STATE_DIR": str(stack.local.state_dir)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await command.communicate()
    assert command.returncode == 0, err.decode()
    return await last_served_on(load, LAYOUT_FLAG, began)


async def accuracy(stack: Stack) -> dict[int, float]:
    """The share served on at each percentage, and that nobody lost the feature as it rose."""
    stages, shares, had_it = Stages(), {}, set()
    for percentage in PERCENTAGES:
        await stages.serve(stack, LAYOUT_FLAG, percentage)
        served = await served_once_reloaded(stack, LAYOUT_FLAG, percentage)
        shares[percentage] = share_on(served)
        has_it = {user for user, variant in served.items() if variant == "on"}
        assert had_it <= has_it, f"{len(had_it - has_it)} users lost the feature at {percentage}%"
        had_it = has_it
    return shares


async def main(runs: int) -> None:
    if find_prometheus() is None:
        sys.exit("no `prometheus` binary on PATH: install it with scripts/system-deps.sh")
    signal, write, command = [], [], []
    async with local_stack(bench_environment(), prometheus_port=free_port()) as stack:
        await install_first_release(stack)
        shares = await accuracy(stack)
        print("fractional rollout: " + ", ".join(f"{share:.2f}% at {p}%" for p, share in shares.items()), flush=True)
        async with LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=50) as load:
            for run in range(runs):
                for way, timings, measure in (("signal", signal, signal_to_last_on), ("store write", write, store_write_to_last_on),
                                              ("releasectl", command, command_to_last_on)):
                    timings.append(await measure(stack, load))
                    print(f"run {run + 1}: {way} {timings[-1]:.3f} s", flush=True)
    report("kill_switch signal to the last request served with the flag on", signal, "< 1 s")
    report("`releasectl flags off` store write to the last request served with the flag on", write, "< 1 s")
    report("`releasectl flags off` command (process start included) to the last request served on", command, "< 1 s")
    for percentage, share in shares.items():
        print(f"fractional rollout at {percentage}%: {share:.2f}% of 4,000 users served on, "
              f"{share - percentage:+.2f} points (target within ±{TOLERANCE_POINTS:g})", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    run_benchmark(main, parser)
