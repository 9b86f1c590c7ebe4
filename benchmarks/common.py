"""What the benchmarks on the real local stack share: a throwaway environment, a
first release to compare against, a probe that only a live canary answers, and one
way of printing figures."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from pipeline.local.devstack import Stack
from pipeline.local.env import LocalEnvironment
from pipeline.logging import configure_logging
from pipeline.temporal import exit_process
from tests.helpers.local import local_environment
from workflows.release import ReleaseWorkflow

SERVICE = "gallery"
QUICK = {"required_approvals": [], "test_suites": ["unit"]}
"""Policy parts every benchmark release shares: no approvals, one staging suite."""


def bench_environment() -> LocalEnvironment:
    return local_environment(Path(tempfile.mkdtemp(prefix="bench-")))


async def install_first_release(stack: Stack, version: str = "1.0.0") -> None:
    request = {"service": SERVICE, "version": version, "policy": QUICK}
    await (await stack.client.start_workflow(ReleaseWorkflow.run, request, id=f"bench-{version}", task_queue=stack.task_queue)).result()


async def served_by_canary(http: httpx.AsyncClient, version_prefix: str = "2.0.") -> bool:
    """Whether a beta photographer's request (which only a live canary serves) reached the new version."""
    response = await http.get("/api/photos", headers={"Host": f"{SERVICE}.localhost", "X-User-Type": "beta-photographer"})
    return response.headers.get("X-Served-Version", "").startswith(version_prefix)


def report(what: str, timings: list[float], target: str) -> None:
    print(
        f"{what}, {len(timings)} runs: median {statistics.median(timings):.3f} s, max {max(timings):.3f} s (target {target})",
        flush=True,
    )


def run_benchmark(main: Callable[..., Awaitable[None]], parser: argparse.ArgumentParser) -> None:
    """Run `main` with the parsed arguments as keywords, with only warnings logged, then exit."""
    configure_logging(level="WARNING")
    asyncio.run(main(**vars(parser.parse_args())))
    exit_process(0)
