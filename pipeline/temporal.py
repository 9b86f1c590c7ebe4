"""Connecting to Temporal, configured by environment, the same way for the worker,
the CLI and the demo.

  TEMPORAL_ADDRESS      host:port of the frontend (default localhost:7233)
  TEMPORAL_NAMESPACE    namespace (default "default")
  PIPELINE_TASK_QUEUE   task queue of the release workers (default "releases")
  TEMPORAL_API_KEY      API key for a hosted Temporal (implies TLS)
  TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY   client certificate and key files for mTLS
  TEMPORAL_TLS_CA       CA bundle of the server, when it is not a public one
  TEMPORAL_TLS          "1" for TLS without client certificates

Credentials are read from files or the environment only; they are never logged.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, TLSConfig

from pipeline import search_attributes


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "releases"

    @classmethod
    def from_env(cls) -> TemporalSettings:
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", cls.address),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=os.environ.get("PIPELINE_TASK_QUEUE", cls.task_queue),
        )


async def connect(settings: TemporalSettings | None = None) -> Client:
    settings = settings or TemporalSettings.from_env()
    api_key = os.environ.get("TEMPORAL_API_KEY") or None
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=api_key,
        tls=_tls_config(api_key is not None),
        data_converter=pydantic_data_converter,
    )


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the pipeline's search attributes where this client may (a dev server,
    a self-hosted cluster). Returns the names it added. Without them, a release could
    not record its phase, so the worker checks this at start-up."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key.name for key in search_attributes.ALL if key.name not in existing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
            )
        )
    return missing


def exit_process(code: int) -> None:
    """Leave a short-lived program that used a Temporal client. It exits with
    os._exit after flushing: the client's native threads can abort interpreter
    shutdown with "Fatal Python error: PyGILState_Release" (temporalio/sdk-python#300),
    which would turn a clean run into a crash report and a wrong exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _tls_config(api_key_given: bool) -> TLSConfig | bool:
    cert, key, ca = (os.environ.get(name) for name in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"))
    if cert or key or ca:
        return TLSConfig(
            client_cert=Path(cert).read_bytes() if cert else None,
            client_private_key=Path(key).read_bytes() if key else None,
            server_root_ca_cert=Path(ca).read_bytes() if ca else None,
        )
    return api_key_given or os.environ.get("TEMPORAL_TLS") == "1"


__all__ = ["RPCError", "TemporalSettings", "connect", "ensure_search_attributes", "exit_process"]
