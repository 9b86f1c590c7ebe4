"""The release worker: runs ReleaseWorkflow and its activities on one task queue.

Configured by environment (see pipeline/temporal.py for Temporal's settings and
pipeline/local/env.py for the local target's); logs are JSON unless the worker runs
in a terminal (PIPELINE_LOG_FORMAT=json|console to choose).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import activities
import workflows
from pipeline.gates import BUILT_IN_SOURCE, GatesConfigError, load_gates_config
from pipeline.logging import configure_logging
from pipeline.telemetry import MetricsConfigError, serve_metrics_from_env
from pipeline.temporal import RPCError, TemporalSettings, connect, ensure_search_attributes, exit_process
from pipeline.tracing import with_tracing

log = structlog.get_logger("pipeline.worker")
STICKY_TIMEOUT = timedelta(seconds=5)

CACHE_ENV = "PIPELINE_MAX_CACHED_WORKFLOWS"
DEFAULT_CACHED_WORKFLOWS = 2_000
"""Every release holds its service's lock, a child workflow: two cached workflows per
release. With the SDK's default of 1,000, 1,000 concurrent releases evicted each other
(1,566 workflow-task timeouts, each a full replay, in #15's measurement)."""

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0

LOGGING_MODULES = ("structlog",)
"""The log handler runs inside the sandbox when workflow code logs, and structlog
imports lazily while it formats: the sandbox would re-import structlog and refuse
the os.environ reads it makes at import time ("--- Logging error ---")."""


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*LOGGING_MODULES))


class WorkerConfigError(Exception):
    """A worker setting from the environment that cannot be used."""


def max_cached_workflows() -> int:
    value = os.environ.get(CACHE_ENV, "")
    if not value:
        return DEFAULT_CACHED_WORKFLOWS
    if not value.isdigit() or int(value) < 1:
        raise WorkerConfigError(f"{CACHE_ENV} must be a positive whole number, not {value!r}")
    return int(value)


def build_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows.ALL,
        activities=activities.ALL,
        workflow_runner=workflow_runner(),
        max_cached_workflows=max_cached_workflows(),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A workflow task waits this long on a lost worker's sticky queue before any
        # worker may take it: it bounds how late a kill switch is after a worker dies.
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    )


def check_gates() -> None:
    """A broken gates file stops the worker at start, not a release at its first gate."""
    config, source = load_gates_config()
    if source == BUILT_IN_SOURCE:
        log.warning("no PIPELINE_GATES_FILE: anyone may approve and production may change at any time")
    else:
        log.info("gates", source=source, services=sorted(config.services), groups=sorted(config.groups))


async def connect_until_stopped(settings: TemporalSettings, stop: asyncio.Event) -> Client | None:
    """Connect, retrying with capped exponential backoff until the server answers or
    stop is set (then None): a worker started before its server waits for it."""
    delay = FIRST_RETRY_SECONDS
    for attempt in itertools.count(1):
        try:
            return await connect(settings)
        except RuntimeError as error:  # what Client.connect raises when it cannot connect
            log.warning(
                "temporal unreachable, retrying",
                attempt=attempt, address=settings.address, error=str(error), retry_in_seconds=delay,
            )
        if await _set_within(stop, delay):
            return None
        delay = min(delay * 2, MAX_RETRY_SECONDS)


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def run(settings: TemporalSettings) -> None:
    check_gates()
    # Before any client connects: every client and worker reports to its endpoint.
    log.info("metrics", address=serve_metrics_from_env() or "off (WORKER_METRICS_ADDRESS unset)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = await connect_until_stopped(settings, stop)
    if client is None:
        log.info("worker stopped before connecting")
        return
    try:
        added = await ensure_search_attributes(client)
        if added:
            log.info("registered search attributes", names=added)
    except RPCError as error:
        log.warning("could not check search attributes; register them as the README says", error=error.message)
    client, traces = with_tracing(client)  # OTEL_EXPORTER_OTLP_ENDPOINT set: spans of every release
    worker = build_worker(client, settings.task_queue)
    log.info("worker started", address=settings.address, namespace=settings.namespace, task_queue=settings.task_queue)
    async with worker:
        await stop.wait()
    if traces is not None:
        traces.shutdown()  # the last spans are sent, not lost with the process
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    try:
        max_cached_workflows()  # a bad setting stops the worker before it connects
        asyncio.run(run(TemporalSettings.from_env()))
    except (GatesConfigError, MetricsConfigError, WorkerConfigError) as error:
        log.error("worker not started", error=str(error))
        raise SystemExit(2) from None
    # A stop on SIGTERM is a clean exit: not the abort the client's native threads
    # can cause at interpreter shutdown (see exit_process).
    exit_process(0)


if __name__ == "__main__":
    main()
