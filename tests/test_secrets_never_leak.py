"""No secret of the worker reaches a log or a workflow history, on real parts: the
Temporal dev server, a worker process, Traefik and sample-service processes, and a
webhook receiver on loopback.

The worker holds a webhook URL with tokens in its path and query, a declared secret
that the release uses (`secret://DB_PASSWORD`) and a credential of its own. Two
releases run (a first install, then a canary analysed under load and promoted); then
every file under the stack's state directory (worker, service and Traefik logs,
routing and traffic files) and each release's full history are searched for every
secret value. The test first checks the secrets were really used (the webhook was
called at its secret URL, the service holds the declared secret), so finding none
means they were kept out, not that they were never touched."""

from __future__ import annotations

import asyncio
import json
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import Outcome
from pipeline.local.webhook_sink import LoopbackServer
from tests.helpers.local import environ_of, local_environment
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, start_release

pytestmark = pytest.mark.integration

SECRETS = {
    "webhook path token": f"XOXB-SECRET1-{uuid.uuid4().hex}",
    "webhook query token": f"SECRET2-{uuid.uuid4().hex}",
    "declared secret DB_PASSWORD": f"SECRET3-{uuid.uuid4().hex}",
    "worker credential": f"SECRET4-{uuid.uuid4().hex}",
}


def recording(paths: list[str]) -> type[BaseHTTPRequestHandler]:
    """A webhook receiver that records the path (with query) each notification came to."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            paths.append(self.path)
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def worker_env(hook_base_url: str, gates_file: Path) -> dict[str, str]:
    gates_file.write_text(json.dumps({"defaults": {"webhooks": [{"name": "chat", "format": "slack", "url_env": "SLACK_URL"}]}}))
    return {
        "PIPELINE_GATES_FILE": str(gates_file),
        "SLACK_URL": f"{hook_base_url}/services/T000/{SECRETS['webhook path token']}?token={SECRETS['webhook query token']}",
        "PIPELINE_SECRET_DB_PASSWORD": SECRETS["declared secret DB_PASSWORD"],
        "PIPELINE_PROMETHEUS_TOKEN": SECRETS["worker credential"],
    }


async def release(stack: Stack, version: str) -> WorkflowHandle:
    handle = await start_release(stack, version, QUICK_POLICY, env={"DB_PASSWORD": "secret://DB_PASSWORD", "FEATURE_X": "on"})
    result = await asyncio.wait_for(handle.result(), 120)
    assert result.outcome is Outcome.PROMOTED, result.reason
    return handle


def stable_pid(stack: Stack) -> int:
    return json.loads((stack.local.services_dir / f"{SERVICE}.json").read_text())["slots"]["stable"]["pid"]


def secrets_in(text: bytes) -> list[str]:
    return [what for what, value in SECRETS.items() if value.encode() in text]


async def test_no_secret_reaches_a_log_or_a_workflow_history(tmp_path):
    hook_paths: list[str] = []
    local = local_environment(tmp_path / "stack")
    with LoopbackServer(recording(hook_paths)) as hooks:
        async with local_stack(local, task_queue="secrets", worker_env=worker_env(hooks.url, tmp_path / "gates.json")) as stack:
            async with LoadGenerator(local.http_url, SERVICE, rate_per_second=40):
                handles = [await release(stack, version) for version in ("1.0.0", "2.0.0")]
            service_environ = environ_of(stable_pid(stack))
            histories = {handle.id: (await handle.fetch_history()).to_json() for handle in handles}

    assert service_environ["DB_PASSWORD"] == SECRETS["declared secret DB_PASSWORD"]
    assert SECRETS["worker credential"] not in service_environ.values()
    assert hook_paths and all(SECRETS["webhook path token"] in path and SECRETS["webhook query token"] in path
                              for path in hook_paths)

    files = [path for path in local.state_dir.rglob("*") if path.is_file()]
    assert {"worker.log", "traefik.log"} <= {path.name for path in files}
    assert sum(SERVICE in path.name for path in local.logs_dir.iterdir()) >= 2  # service logs
    leaks = {str(path): secrets_in(path.read_bytes()) for path in files}
    leaks |= {f"history of {workflow_id}": secrets_in(text.encode()) for workflow_id, text in histories.items()}
    assert {where: found for where, found in leaks.items() if found} == {}
