"""Benchmark of issue #10's targets, on the real local stack under 50 req/s:

- a breach during bake to all traffic on the previous version: under 1 s after the
  breaching analysis (from the history: the completion of the metrics read that
  breached to the completion of the revert, which returns once Traefik serves it);
- a warm revert from command to all traffic on the old version: under 1 s, and a cold
  one (deployed again, then promoted) under 10 s (from `start_workflow` to the
  completion of the change that routes the traffic);
- failed requests through it all: 0 (the faulty version's own injected 500s aside).

Each run releases a version whose faults start 20 s after it does (a slow leak:
canary and step pass, bake catches it), then a good version, then reverts cold to the
version the good one replaced (retired after the bake) and warm back to the good one.

    .venv/bin/python -m benchmarks.after_promotion [--runs 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from temporalio.client import WorkflowHandle

from benchmarks.common import QUICK, SERVICE, bench_environment, install_first_release, report, run_benchmark
from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import Outcome
from tests.helpers.real_stack import activity_completions
from workflows.release import ReleaseWorkflow

POLICY = {
    **QUICK,
    "canary_duration_seconds": 4,
    "analysis_interval_seconds": 2,
    "steps": [100],
    "step_interval_seconds": 2,
    "min_requests": 5,
    "bake_seconds": 4,
}
LEAK = {"GALLERY_ERROR_RATE": "0.5", "GALLERY_FAULTS_AFTER_SECONDS": "20"}


async def release(stack: Stack, version: str, policy: dict[str, Any], env: dict[str, str] | None = None) -> WorkflowHandle:
    request = {"service": SERVICE, "version": version, "policy": policy, "env": env or {}}
    return await stack.client.start_workflow(ReleaseWorkflow.run, request, id=f"bench-{version}", task_queue=stack.task_queue)


async def bake_breach_to_previous(stack: Stack, version: str) -> float:
    handle = await release(stack, version, {**POLICY, "bake_seconds": 120}, LEAK)
    result = await handle.result()
    assert result.outcome is Outcome.ROLLED_BACK and result.after_promotion, result.reason
    done = await activity_completions(handle)
    reverted = next(at for name, _, at in done if name == "revert_version")
    breached = max(at for name, _, at in done if name == "observe_metrics" and at < reverted)
    return (reverted - breached).total_seconds()


async def revert(stack: Stack, to: str, activity: str) -> float:
    """Seconds from the command to the completion of the activity that routes the traffic."""
    request = {"service": SERVICE, "version": to, "revert": {"actor": "bench", "reason": "benchmark"}}
    began = time.time()
    handle = await stack.client.start_workflow(
        ReleaseWorkflow.run, request, id=f"bench-revert-{to}-{began}", task_queue=stack.task_queue
    )
    result = await handle.result()
    assert result.outcome is Outcome.REVERTED, result.reason
    routed = next(at for name, _, at in await activity_completions(handle) if name == activity)
    return routed.timestamp() - began


def failed_requests(load: LoadGenerator, faulty: set[str]) -> int:
    """Responses that failed for any reason but a faulty version's own injected fault."""
    return sum(1 for served in load.log if served.status != 200 and served.version not in faulty)


async def main(runs: int) -> None:
    bake, warm, cold, faulty = [], [], [], set()
    async with local_stack(bench_environment()) as stack:
        await install_first_release(stack)
        async with LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=50) as load:
            stable = "1.0.0"
            for run in range(runs):
                leaking, good = f"2.{run}.0", f"3.{run}.0"
                faulty.add(leaking)
                bake.append(await bake_breach_to_previous(stack, leaking))
                assert (await (await release(stack, good, POLICY)).result()).outcome is Outcome.PROMOTED
                cold.append(await revert(stack, stable, "promote_version"))
                warm.append(await revert(stack, good, "revert_version"))
                stable = good
                print(f"run {run + 1}: bake breach {bake[-1]:.2f} s, cold revert {cold[-1]:.2f} s, "
                      f"warm revert {warm[-1]:.2f} s", flush=True)
        failed = failed_requests(load, faulty)
    report("bake breach to all traffic on the previous version", bake, "< 1 s")
    report("warm revert, command to all traffic on the old version", warm, "< 1 s")
    report("cold revert, command to all traffic on the old version", cold, "< 10 s")
    print(f"failed requests at 50 req/s: {failed} of {len(load.log)} (target 0; the leaking versions' "
          f"injected 500s not counted)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    run_benchmark(main, parser)
