"""The release worker: runs ReleaseWorkflow and its activities on one task queue.

Configured by environment (see pipeline/temporal.py for Temporal's settings and
pipeline/localenv.py for the local target's); logs are JSON unless the worker runs
in a terminal (PIPELINE_LOG_FORMAT=json|console to choose).
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

import activities
import workflows
from pipeline.gates import BUILT_IN_SOURCE, GatesConfigError, load_gates_config
from pipeline.logging import configure_logging
from pipeline.temporal import RPCError, TemporalSettings, connect, ensure_search_attributes

log = structlog.get_logger("pipeline.worker")


def build_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows.ALL,
        activities=activities.ALL,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


def check_gates() -> None:
    """A broken gates file stops the worker at start, not a release at its first gate."""
    config, source = load_gates_config()
    if source == BUILT_IN_SOURCE:
        log.warning("no PIPELINE_GATES_FILE: anyone may approve and production may change at any time")
    else:
        log.info("gates", source=source, services=sorted(config.services), groups=sorted(config.groups))


async def run(settings: TemporalSettings) -> None:
    check_gates()
    client = await connect(settings)
    try:
        added = await ensure_search_attributes(client)
        if added:
            log.info("registered search attributes", names=added)
    except RPCError as error:
        log.warning("could not check search attributes; register them as the README says", error=error.message)
    worker = build_worker(client, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker started", address=settings.address, namespace=settings.namespace, task_queue=settings.task_queue)
    async with worker:
        await stop.wait()
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    try:
        asyncio.run(run(TemporalSettings.from_env()))
    except GatesConfigError as error:
        log.error("worker not started", error=str(error))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
