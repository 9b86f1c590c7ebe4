"""Optional OpenTelemetry tracing of releases through `temporalio.contrib.opentelemetry`:
a span for each workflow run, signal, query, update and activity, exported over
OTLP/HTTP. Off unless configured, by OpenTelemetry's own variables:

  OTEL_EXPORTER_OTLP_ENDPOINT          e.g. http://otel-collector:4318 (unset: no tracing)
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   the traces URL itself, if not <endpoint>/v1/traces
  OTEL_SERVICE_NAME                    default release-worker

Releases are started by CI or releasectl without a span of their own, so workflow
spans are made whatever the caller (`always_create_workflow_spans`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from temporalio.client import Client

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
DEFAULT_SERVICE_NAME = "release-worker"


def tracing_configured() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_ENVS)


def with_tracing(client: Client) -> tuple[Client, TracerProvider | None]:
    """`client` with the tracing interceptor when OTLP is configured (its workers trace
    too), and the tracer provider to shut down (flushing its spans) when the worker
    stops; otherwise `client` and None. OpenTelemetry is imported only when used."""
    if not tracing_configured():
        return client, None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    interceptor = TracingInterceptor(provider.get_tracer("release-pipeline"), always_create_workflow_spans=True)
    config = client.config()
    config["interceptors"] = [*config["interceptors"], interceptor]
    return Client(**config), provider
