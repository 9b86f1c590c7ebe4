"""The demo: the whole pipeline on this machine, three real releases, nothing faked.

  1. gallery 1.0.0, the first release: staging suites, then installed as stable;
  2. gallery 1.1.0, a good release: staging, canary approved by alice, production
     approved by bob, traffic shifted 25 -> 50 -> 75 -> 100 under analysis, promoted;
  3. gallery 1.2.0, a bad release (30% of its responses fail): its canary breaches
     the error-rate threshold and the pipeline rolls it back on its own.

A load generator sends steady traffic through Traefik meanwhile; progress lines
show the phase, the canary's share of traffic, the last analysis and which
version actually served the requests. Everything stops when the demo ends.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from pipeline.devstack import Stack, local_stack
from pipeline.localprometheus import find_prometheus
from pipeline.loadgen import LoadGenerator
from pipeline.localenv import LocalEnvironment
from pipeline.logging import configure_logging
from pipeline.models import ReleaseResult, ReleaseStatus
from pipeline.temporal import exit_process
from workflows.release import ReleaseWorkflow

SERVICE = "gallery"
DEMO_POLICY = {
    "canary_weight": 10,
    "canary_duration_seconds": 15,
    "analysis_interval_seconds": 3,
    "steps": [25, 50, 75, 100],
    "step_interval_seconds": 6,
    "retire_delay_seconds": 2,
}
RELEASES = [
    ("1.0.0", "first release: installed as stable after staging", {}, {}),
    ("1.1.0", "good release: canary, then a progressive shift", {}, {}),
    (
        "1.2.0",
        "bad release: 30% of its responses fail; its unit suite cannot see it, production traffic can",
        {"GALLERY_ERROR_RATE": "0.3"},
        {"test_suites": ["unit"]},
    ),
]
APPROVERS = {"canary": "alice", "production": "bob"}


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


async def run_release(stack: Stack, load: LoadGenerator, version: str, story: str, env: dict, policy: dict) -> ReleaseResult:
    say(f"=== {SERVICE} {version}: {story}")
    request: dict[str, Any] = {
        "service": SERVICE,
        "version": version,
        "target": "local",
        "env": env,
        "policy": {**DEMO_POLICY, **policy},
        "author": "demo",
    }
    handle = await stack.client.start_workflow(
        ReleaseWorkflow.run, request, id=f"release-{SERVICE}-{version}-{uuid.uuid4().hex[:6]}", task_queue=stack.task_queue
    )
    say(f"started workflow {handle.id}")
    result = await follow(handle, load)
    say(f"=== {SERVICE} {version}: {result.outcome.value.upper()}: {result.reason}")
    return result


async def follow(handle: WorkflowHandle, load: LoadGenerator) -> ReleaseResult:
    """Print each change of status, approve each pending stage as its named approver,
    and return the result."""
    last_line, approved = "", set()
    while True:
        status: ReleaseStatus = await handle.query(ReleaseWorkflow.status)
        if status.pending_approval and status.pending_approval not in approved:
            approver = APPROVERS[status.pending_approval.value]
            say(f"{approver} approves the {status.pending_approval.value} stage")
            await handle.signal(ReleaseWorkflow.approve, {"stage": status.pending_approval.value, "approver": approver, "comment": "demo"})
            approved.add(status.pending_approval)
        line = progress_line(status, load)
        if line != last_line:
            say(line)
            last_line = line
        if status.outcome is not None:
            return await handle.result()
        await asyncio.sleep(1)


def progress_line(status: ReleaseStatus, load: LoadGenerator) -> str:
    served = load.served_since(time.monotonic() - 3)
    total = sum(served.values()) or 1
    shares = " ".join(f"{version}={count * 100 // total}%" for version, count in sorted(served.items()))
    bar = "#" * (status.canary_weight // 10) + "." * (10 - status.canary_weight // 10)
    analysis = f" | analysis {status.last_analysis.verdict.value}: {status.last_analysis.summary}" if status.last_analysis else ""
    return f"{status.phase.value:<20} [{bar}] {status.canary_weight:>3}% new{analysis} | served: {shares}"


async def main_async(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly, leaving no process behind
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    local = LocalEnvironment(Path(args.state_dir).resolve(), http_port=args.http_port, admin_port=args.admin_port)
    say("starting: Temporal dev server, worker, Traefik (first start may take a few seconds)")
    prometheus_port = args.prometheus_port if find_prometheus() else None  # then policies may name "prometheus"
    async with local_stack(local, ui_port=args.ui_port, temporal_port=args.temporal_port, prometheus_port=prometheus_port) as stack:
        if stack.prometheus:
            say(f"Prometheus:    {stack.prometheus.url} (scraping Traefik every second)")
        say(f"Temporal UI:   http://localhost:{args.ui_port}/namespaces/default/workflows")
        say(f"Gallery:       curl -H 'Host: {SERVICE}.localhost' {local.http_url}/   (Traefik, port {local.http_port})")
        say(f"Worker log:    {local.logs_dir / 'worker.log'}")
        async with LoadGenerator(local.http_url, SERVICE, rate_per_second=30, segment_every=20) as load:
            results = [await run_release(stack, load, *release) for release in RELEASES]
            say("summary: " + ", ".join(f"{r.version} {r.outcome.value}" for r in results))
            if args.hold:
                say("holding the stack (load keeps flowing) for exploration; Ctrl-C to stop everything")
                await asyncio.Event().wait()
    say("stopped everything")
    expected = ["promoted", "promoted", "rolled_back"]
    return 0 if [r.outcome.value for r in results] == expected else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default=".state/demo")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--http-port", type=int, default=8000, help="Traefik's port for service traffic")
    parser.add_argument("--admin-port", type=int, default=8001, help="Traefik's API and metrics port")
    parser.add_argument("--prometheus-port", type=int, default=9090, help="local Prometheus, when one is on PATH")
    parser.add_argument("--hold", action="store_true", help="keep everything running after the releases")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    try:
        code = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything stopped")
        code = 130
    exit_process(code)


if __name__ == "__main__":
    main()
