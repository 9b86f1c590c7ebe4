"""Optional OpenTelemetry tracing (pipeline/tracing.py): a release traced end to end,
its spans exported over real OTLP/HTTP to a receiver in this test (a stand-in for an
OpenTelemetry collector, which cannot run here) and decoded with OpenTelemetry's own
protobuf messages. The world behind the activities is FakeWorld."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.models import Outcome
from pipeline.tracing import with_tracing
from tests.helpers.fakes import FakeWorld
from workers.main import workflow_runner
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow

TASK_QUEUE = "releases-traced"


class Receiver(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and keeps each request's path and decoded body."""

    received: list[tuple[str, ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, ExportTraceServiceRequest.FromString(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def collector(monkeypatch) -> Iterator[list[tuple[str, ExportTraceServiceRequest]]]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    yield Receiver.received
    server.shutdown()
    thread.join()


def test_without_an_otlp_endpoint_nothing_is_traced(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    client = object()
    assert with_tracing(client) == (client, None)


async def test_a_traced_release_exports_its_workflow_and_activity_spans(time_skipping_env: WorkflowEnvironment, collector):
    client, provider = with_tracing(time_skipping_env.client)
    release_id = f"release-traced-{uuid.uuid4().hex[:6]}"
    world = FakeWorld()
    async with Worker(
        client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities(),
        workflow_runner=workflow_runner(),
    ):
        # started as CI starts a release: by a client that traces nothing
        result = await time_skipping_env.client.execute_workflow(
            ReleaseWorkflow.run,
            {"service": f"traced-{uuid.uuid4().hex[:6]}", "version": "2.0.0", "policy": {"required_approvals": []}},
            id=release_id,
            task_queue=TASK_QUEUE,
        )
    provider.shutdown()  # flushes the batch

    assert result.outcome is Outcome.PROMOTED
    assert {path for path, _ in collector} == {"/v1/traces"}
    spans = [
        span
        for _, export in collector
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = {span.name for span in spans}
    assert {"RunWorkflow:ReleaseWorkflow", "RunActivity:deploy_version", "RunActivity:set_traffic"} <= names
    services = {
        attribute.value.string_value
        for _, export in collector
        for resource in export.resource_spans
        for attribute in resource.resource.attributes
        if attribute.key == "service.name"
    }
    assert services == {"release-worker"}
    # Started without a span, each activity is a trace of its own, found by the release's id
    release_ids = {
        attribute.value.string_value
        for span in spans
        if span.name.startswith("RunActivity:")
        for attribute in span.attributes
        if attribute.key == "temporalWorkflowID"
    }
    assert release_id in release_ids and all(found.startswith("release-") for found in release_ids)
