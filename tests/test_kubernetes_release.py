"""Whole releases on the kubernetes target: the real workflow and the real activities
(activities.ALL) on the time-skipping server, with the worker's environment pointing
the target at the API server double.

Two stand-ins, both because this machine has no cluster: the metrics activity is
fake (no Prometheus provider exists for the kubernetes target yet; the fake judges
the canary by the weight the double's VirtualService gives it), and the policy
runs no staging suites (their commands would call in-cluster URLs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ALL as ACTIVITIES
from activities import observe_metrics
from pipeline.models import Observation, ObserveRequest, Outcome, VersionMetrics
from pipeline.targets import target_for
from tests.helpers.fakes import FAILING, HEALTHY
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import IMAGE, PRODUCTION, SERVICE, STAGING, seed, worker_env
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow

TASK_QUEUE = "releases-k8s-test"
POLICY = {
    "required_approvals": [],
    "test_suites": [],
    "canary_weight": 10,
    "canary_duration_seconds": 120,
    "step_interval_seconds": 60,
    "analysis_interval_seconds": 60,
    "retire_delay_seconds": 60,
}


def canary_weight(double: KubeDouble) -> int:
    primary = double.get("virtualservices", PRODUCTION, SERVICE)["spec"]["http"][-1]
    return sum(entry.get("weight", 0) for entry in primary["route"] if entry["destination"]["subset"] == "canary")


def weight_history(double: KubeDouble) -> list[int]:
    """The canary weight of the primary route in each write to the VirtualService."""
    return [
        sum(e.get("weight", 0) for e in body["spec"]["http"][-1]["route"] if e["destination"]["subset"] == "canary")
        for _, _, body in double.writes("virtualservices")
    ]


@pytest.fixture
def double(tmp_path, monkeypatch) -> Iterator[KubeDouble]:
    double = KubeDouble().start()
    seed(double)
    for name, value in worker_env(double, tmp_path).items():
        monkeypatch.setenv(name, value)
    target_for.cache_clear()
    yield double
    target_for.cache_clear()
    double.stop()


@pytest.fixture
async def release(time_skipping_env: WorkflowEnvironment, double: KubeDouble) -> Callable[..., Any]:
    async def release(canary_health: Callable[[int], VersionMetrics]) -> Any:
        @activity.defn(name="observe_metrics")
        async def fake_observe(request: ObserveRequest) -> Observation:
            canary = canary_health(canary_weight(double))
            return Observation(window_seconds=60, canary=canary, stable=HEALTHY, cursor={})

        activities = [a for a in ACTIVITIES if a is not observe_metrics] + [fake_observe]
        request = {"service": SERVICE, "version": "2.0.0", "target": "kubernetes", "policy": POLICY}
        async with Worker(time_skipping_env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=activities):
            return await time_skipping_env.client.execute_workflow(
                ReleaseWorkflow.run, request, id=f"release-{uuid.uuid4()}", task_queue=TASK_QUEUE
            )

    return release


def image(double: KubeDouble, namespace: str, name: str = SERVICE) -> str:
    return double.get("deployments", namespace, name)["spec"]["template"]["spec"]["containers"][0]["image"]


async def test_good_release_moves_weights_through_the_steps_and_promotes(double: KubeDouble, release):
    result = await release(lambda weight: HEALTHY)

    assert result.outcome is Outcome.PROMOTED, result.reason
    assert weight_history(double) == [10, 25, 50, 75, 100, 100, 0]  # promote: all to the canary, then to stable
    assert image(double, PRODUCTION) == f"{IMAGE}:2.0.0"
    assert double.get("deployments", PRODUCTION, f"{SERVICE}-canary") is None  # retired
    assert double.get("deployments", STAGING, SERVICE)["spec"]["replicas"] == 0


async def test_bad_release_rolls_back_to_all_stable_with_the_canary_at_zero(double: KubeDouble, release):
    result = await release(lambda weight: FAILING if weight >= 50 else HEALTHY)

    assert result.outcome is Outcome.ROLLED_BACK, result.reason
    assert "at 50% canary traffic" in result.reason
    assert weight_history(double) == [10, 25, 50, 0]
    assert [route["name"] for route in double.get("virtualservices", PRODUCTION, SERVICE)["spec"]["http"]] == [
        "admin", "primary"
    ]
    assert canary_weight(double) == 0
    assert double.get("deployments", PRODUCTION, f"{SERVICE}-canary")["spec"]["replicas"] == 0
    assert image(double, PRODUCTION) == f"{IMAGE}:1.0.0"
    assert double.get("deployments", PRODUCTION, SERVICE)["spec"]["replicas"] == 4
