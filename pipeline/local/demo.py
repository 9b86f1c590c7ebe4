"""The demo: the whole pipeline on this machine, four real releases, nothing faked.

  1. gallery 1.0.0, the first release: staging suites, then installed as stable
     once two release managers (bob and carol) approve production;
  2. gallery 1.1.0, a good release that adds `shoots.priority` (expand 0002, backfill
     0003, contract 0004 to NOT NULL): photographers are uploading when its canary
     would start, so it holds until the uploads finish; production is expanded before
     the canary, which writes priority while 1.0.0 goes on serving on the expanded
     schema; canary approved by alice, production by bob and carol, traffic shifted
     25 -> 50 -> 75 -> 100 under analysis, promoted; once 1.0.0 is retired, the
     backfill fills the shoots it left empty and contract makes the column NOT NULL;
  3. gallery 1.2.0, a bad release (30% of its responses fail): its canary breaches
     the error-rate threshold and the pipeline rolls it back on its own;
  4. gallery 1.3.0, a bad migrating release (expand 0005, `photos.caption`): its
     canary stores photos whose files it never writes; the data-consistency checks
     catch it at the next analysis, traffic goes back to the stable 1.1.0 and the
     expand is reversed, with no row lost.

Then, with a local Prometheus, two feature-flag rollouts without a deploy
(pipeline/local/demo_flags.py): a new gallery layout enabled step by step, and a
faulty feature turned off at the first analysis that sees it. Last, two release trains
of shoot-service and the gallery (pipeline/local/demo_trains.py): one promoted, one whose
failing gallery canary makes the train revert the already promoted shoot-service.

Each run starts from an empty gallery database and file store, so it tells the same
story. The worker runs with a gates file (the two-person rule for production, the
sample service's live-activity endpoint, a webhook); the demo receives the webhook's
notifications and prints them. A load generator sends steady reads and a trickle of
uploads through Traefik meanwhile; progress lines show the phase, the canary's share
of traffic, the last analysis and which version actually served the requests, and
each schema step as the release takes it. Everything stops when the demo ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from temporalio.client import WorkflowHandle

from pipeline.database import DATABASES_FILE_VARIABLE, database_url
from pipeline.local.demo_flags import run_flag_demo
from pipeline.local.demo_trains import run_train_demo
from pipeline.local.devstack import Stack, local_stack, set_live_activity
from pipeline.local.env import LocalEnvironment
from pipeline.local.loadgen import LoadGenerator, Served
from pipeline.local.postgres import LocalPostgres
from pipeline.local.prometheus import find_prometheus
from pipeline.local.uploads import Upload, Uploads
from pipeline.local.webhook_sink import WebhookSink
from pipeline.logging import configure_logging
from pipeline.models import ApprovalReceipt, ReleaseResult, ReleaseStatus
from pipeline.temporal import exit_process
from pipeline.terminal import analysis_summary, render_hold, render_served

SERVICE = "gallery"
DEMO_POLICY = {
    "canary_weight": 10,
    "canary_duration_seconds": 15,
    "analysis_interval_seconds": 3,
    "steps": [25, 50, 75, 100],
    "step_interval_seconds": 6,
    "retire_delay_seconds": 2,
    "bake_seconds": 9,
}
DEMO_GATES = {
    "groups": {"release-managers": ["bob", "carol"]},
    "defaults": {
        "approvals": {"production": {"groups": ["release-managers"], "min_approvals": 2}},
        "webhooks": [{"name": "demo", "format": "json", "url_env": "DEMO_WEBHOOK_URL", "events": ["approval_needed", "held", "rollback", "finished"]}],
    },
    "services": {SERVICE: {"live_activity": {"url": "{stable}/platform/activity", "targets": ["local"]}}},
}
APPROVERS = {"canary": ["alice"], "production": ["bob", "carol"]}
UPLOADS_LAST_SECONDS = 4
WRITES_PRIORITY = {"GALLERY_WRITES_PRIORITY": "1"}
"""Versions from 1.1.0 on fill shoots.priority: after its contract, every writer must."""
SCHEMA_WORDS = ("schema", "contract", "consistency", "backfill")
"""Timeline entries the demo prints as they come: the migration's steps."""


@dataclass
class DemoRelease:
    version: str
    story: str
    env: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    migration: dict[str, str] | None = None
    uploads_in_progress: int = 0


RELEASES = [
    DemoRelease("1.0.0", "first release: installed as stable after staging and two approvals"),
    DemoRelease(
        "1.1.0",
        "good release adding shoots.priority: held while photographers upload, expand, canary, progressive "
        "shift, backfill and contract",
        env=WRITES_PRIORITY,
        migration={"expand": "0002_shoot_priority", "backfill": "0003_shoot_priority_backfill",
                   "contract": "0004_shoot_priority_not_null"},
        uploads_in_progress=3,
    ),
    DemoRelease(
        "1.2.0",
        "bad release: 30% of its responses fail; its unit suite cannot see it, production traffic can",
        env={**WRITES_PRIORITY, "GALLERY_ERROR_RATE": "0.3"},
        policy={"test_suites": ["unit"]},
    ),
    DemoRelease(
        "1.3.0",
        "bad migrating release (expand photos.caption): its canary stores photos without their files; "
        "the data-consistency checks can see it",
        env={**WRITES_PRIORITY, "GALLERY_BROKEN_FILE_REFS": "1"},
        policy={"test_suites": ["unit"]},
        migration={"expand": "0005_photo_caption"},
    ),
]
EXPECTED = ["promoted", "promoted", "rolled_back", "rolled_back"]


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


async def run_release(stack: Stack, load: LoadGenerator, release: DemoRelease) -> ReleaseResult:
    say(f"=== {SERVICE} {release.version}: {release.story}")
    if release.uploads_in_progress:
        await set_live_activity(stack, SERVICE, active_uploads=release.uploads_in_progress)
        say(f"photographers start {release.uploads_in_progress} uploads on the stable gallery")
    if release.migration:
        say(f"database: {database_summary(stack.local)}")
    request: dict[str, Any] = {
        "service": SERVICE,
        "version": release.version,
        "target": "local",
        "env": release.env,
        "policy": {**DEMO_POLICY, "live_activity_recheck_seconds": 2, **release.policy},
        "author": "demo",
        **({"migration": release.migration} if release.migration else {}),
    }
    handle = await stack.client.start_workflow(
        "ReleaseWorkflow",
        request,
        id=f"release-{SERVICE}-{release.version}-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
        result_type=ReleaseResult,
        static_summary=f"release {SERVICE} {release.version} on local",
    )
    say(f"started workflow {handle.id}")
    result = await follow(stack, handle, load)
    say(f"=== {SERVICE} {release.version}: {result.outcome.value.upper()}: {result.reason}")
    if release.migration:
        say(f"database: {database_summary(stack.local)}")
    return result


async def follow(stack: Stack, handle: WorkflowHandle, load: LoadGenerator) -> ReleaseResult:
    """Print each change of status, approve each pending stage as its named approvers
    (through the submit_approval update, which answers), let held uploads finish a
    few seconds later, and return the result."""
    last_line, approved, uploads_end, shown = "", set(), None, 0
    while True:
        status: ReleaseStatus = await handle.query("status", result_type=ReleaseStatus)
        for entry in status.timeline[shown:]:
            if any(word in entry.message for word in SCHEMA_WORDS):
                say(entry.message)
        shown = len(status.timeline)
        if status.pending_approval and status.pending_approval not in approved:
            await approve(handle, status.pending_approval.value)
            approved.add(status.pending_approval)
        if status.hold and status.hold.gate == "live_activity" and uploads_end is None:
            uploads_end = time.monotonic() + UPLOADS_LAST_SECONDS
        if uploads_end is not None and time.monotonic() >= uploads_end:
            await set_live_activity(stack, SERVICE, active_uploads=0)
            say("the uploads finish")
            uploads_end = float("inf")
        line = progress_line(status, load)
        if line != last_line:
            say(line)
            last_line = line
        if status.outcome is not None:
            return await handle.result()
        await asyncio.sleep(1)


async def approve(handle: WorkflowHandle, stage: str) -> None:
    for approver in APPROVERS[stage]:
        receipt = await handle.execute_update(
            "submit_approval", {"stage": stage, "approver": approver, "comment": "demo"}, result_type=ApprovalReceipt
        )
        say(f"{approver} approves the {stage} stage: {receipt.message}")


def failed_by_version(failed: Iterable[Served | Upload]) -> str:
    """Failed requests per version that answered: the bad releases' own failures apart
    from the router's (before the first install, nothing serves the gallery)."""
    counts = Counter(request.version for request in failed)
    return ", ".join(f"{count} by {version}" for version, count in sorted(counts.items())) or "none"


def database_summary(local: LocalEnvironment) -> str:
    """The production database's revision and row counts, read as an operator would."""
    url = database_url(SERVICE, "production", {DATABASES_FILE_VARIABLE: str(local.databases_file)})
    with psycopg.connect(url) as connection:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        shoots, photos = connection.execute("SELECT (SELECT count(*) FROM shoots), (SELECT count(*) FROM photos)").fetchone()
    return f"production schema at {revision}; {shoots} shoots, {photos} photos"


def empty_world(local: LocalEnvironment) -> None:
    """The demo tells the same story each run: its gallery database (the PostgreSQL data
    directory) and file store start empty."""
    server = LocalPostgres(local.state_dir)
    server.stop()
    shutil.rmtree(server.pgdata, ignore_errors=True)
    shutil.rmtree(local.files_dir, ignore_errors=True)


def print_notification(notification: dict[str, Any]) -> None:
    say(f"webhook <- {notification['event']}: {notification['message']}")


def progress_line(status: ReleaseStatus, load: LoadGenerator) -> str:
    """Phase, traffic, a hold (why, until when), the last analysis, and which version
    served the last 3 s of load at the router ("no version" when the router answered itself)."""
    served = render_served(load.served_since(time.monotonic() - 3))
    bar = "#" * (status.canary_weight // 10) + "." * (10 - status.canary_weight // 10)
    hold = f" | held: {render_hold(status.hold)}" if status.hold else ""
    last = status.last_analysis
    analysis = f" | analysis {last.verdict.value}: {analysis_summary(last)}" if last else ""
    return f"{status.phase.value:<20} [{bar}] {status.canary_weight:>3}% new{hold}{analysis} | served (last 3 s): {served}"


async def main_async(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly, leaving no process behind
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    local = LocalEnvironment(Path(args.state_dir).resolve(), http_port=args.http_port, admin_port=args.admin_port)
    empty_world(local)
    say("starting: Temporal dev server, worker, Traefik (first start may take a few seconds)")
    prometheus_port = args.prometheus_port if find_prometheus() else None  # then policies may name "prometheus"
    gates_file = local.state_dir / "gates.json"
    gates_file.parent.mkdir(parents=True, exist_ok=True)
    gates_file.write_text(json.dumps(DEMO_GATES, indent=1))
    with WebhookSink(print_notification) as sink:
        worker_env = {"PIPELINE_GATES_FILE": str(gates_file), "DEMO_WEBHOOK_URL": sink.url}
        return await run_demo(args, local, prometheus_port, worker_env)


async def run_demo(args: argparse.Namespace, local: LocalEnvironment, prometheus_port: int | None, worker_env: dict[str, str]) -> int:
    stack_ports = {"ui_port": args.ui_port, "temporal_port": args.temporal_port, "prometheus_port": prometheus_port}
    async with local_stack(local, worker_env=worker_env, **stack_ports) as stack:
        if stack.prometheus:
            say(f"Prometheus:    {stack.prometheus.url} (scraping Traefik every second)")
        say(f"Temporal UI:   http://localhost:{args.ui_port}/namespaces/default/workflows")
        say(f"Gallery:       curl -H 'Host: {SERVICE}.localhost' {local.http_url}/   (Traefik, port {local.http_port})")
        say(f"Worker log:    {local.logs_dir / 'worker.log'}")
        say(f"Gates:         {worker_env['PIPELINE_GATES_FILE']} (production needs 2 of bob, carol)")
        async with (
            LoadGenerator(local.http_url, SERVICE, rate_per_second=30, segment_every=20) as load,
            Uploads(local.http_url, SERVICE, every=0.5) as uploads,
        ):
            results = [await run_release(stack, load, release) for release in RELEASES]
            flags_ok = await run_flag_demo(stack, load, say, approve) if stack.prometheus else True
            trains_ok = await run_train_demo(stack, load, say)
            say("summary: " + ", ".join(f"{r.version} {r.outcome.value}" for r in results))
            say(f"reads: {len(load.log)} sent, failed {failed_by_version(s for s in load.log if s.status != 200)}")
            say(f"uploads: {len(uploads.log)} sent, failed {failed_by_version(uploads.failed())}")
            if args.hold:
                say("holding the stack (load keeps flowing) for exploration; Ctrl-C to stop everything")
                await asyncio.Event().wait()
    say("stopped everything")
    return 0 if [r.outcome.value for r in results] == EXPECTED and flags_ok and trains_ok else 1


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
