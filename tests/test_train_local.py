"""Release trains on the real local stack (the Temporal dev server, a worker process,
Traefik, sample-service processes), with steady load on both services counted by the
version that served it: a train whose second member fails its canary ends with both
services back on their previous versions at the router; a train in the wrong order
fails on the missing dependency (pipeline/gallery/dependency.py).

The trains build on the services' first releases, so the tests run in order on one stack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.gallery.dependency import NEEDS_VARIABLE
from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.models import Outcome, TrainResult
from tests.helpers.local import local_environment
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, approve_all, served_by, start_release
from workflows.train import ReleaseTrainWorkflow

pytestmark = pytest.mark.integration

SHOOT = "shoot-service"
NEEDS_SHOOT_API = {NEEDS_VARIABLE: SHOOT}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    async with local_stack(local_environment(tmp_path_factory.mktemp("train"))) as stack:
        handles = [await start_release(stack, "1.0.0", QUICK_POLICY, service=service) for service in (SHOOT, SERVICE)]
        firsts = await asyncio.gather(*(approve_all(handle) for handle in handles))
        assert [result.outcome for result in firsts] == [Outcome.PROMOTED] * 2, firsts
        yield stack


async def depart(stack: Stack, releases: list[dict[str, Any]]) -> WorkflowHandle:
    request = {"train": "spring-2027", "target": "local", "releases": releases}
    return await stack.client.start_workflow(
        ReleaseTrainWorkflow.run, request, id=f"train-{uuid.uuid4().hex[:6]}", task_queue=stack.task_queue,
        result_type=TrainResult,
    )


def member(service: str, *depends_on: str, env: dict[str, str] | None = None, **policy: Any) -> dict[str, Any]:
    return {"service": service, "version": "2.0.0", "depends_on": list(depends_on), "env": env or {},
            "policy": {**QUICK_POLICY, **policy}}


def states(result: TrainResult) -> dict[str, str]:
    return {m.service: m.state for m in result.members}


async def test_a_train_whose_second_member_fails_its_canary_leaves_both_services_on_their_previous_versions(stack):
    failing_gallery = member(SERVICE, SHOOT, env={**NEEDS_SHOOT_API, "GALLERY_ERROR_RATE": "0.5"})
    async with (LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=30) as gallery_load,
                LoadGenerator(stack.local.http_url, SHOOT, rate_per_second=30) as shoot_load):
        result = await asyncio.wait_for((await depart(stack, [member(SHOOT), failing_gallery])).result(), 240)

        assert result.outcome is Outcome.ROLLED_BACK and result.culprit == SERVICE, result
        assert states(result) == {SHOOT: "reverted", SERVICE: "stopped"}
        assert set(await served_by(gallery_load, "1.0.0")) == {"1.0.0"}
        assert set(await served_by(shoot_load, "1.0.0")) == {"1.0.0"}
    assert shoot_load.served_since(0)["2.0.0"] > 0, "shoot-service 2.0.0 served before the train reverted it"
    assert gallery_load.errors_since(0)["2.0.0"] > 0, "the gallery canary failed under load"
    assert set(gallery_load.errors_since(0)) <= {"2.0.0"}, "only the failing canary answered errors"


async def test_a_train_in_the_wrong_order_fails_on_the_missing_shoot_api_and_starts_nothing_after(stack):
    needing = member(SERVICE, env=NEEDS_SHOOT_API, test_suites=["integration"])
    async with LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=20) as gallery_load:
        result = await asyncio.wait_for((await depart(stack, [needing, member(SHOOT, SERVICE)])).result(), 240)
        assert set(await served_by(gallery_load, "1.0.0")) == {"1.0.0"}

    assert result.culprit == SERVICE and result.outcome is not Outcome.PROMOTED, result
    assert "answered 502" in result.reason, "the gallery's staging suite met the missing shoot API"
    assert states(result) == {SERVICE: "stopped", SHOOT: "not_started"}
