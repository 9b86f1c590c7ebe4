"""The Prometheus path on real parts: a Prometheus server (Debian's `prometheus`)
scraping the local target's Traefik every second, the Temporal dev server, a worker
process and sample services under real load. Releases name
`policy.metrics_provider: "prometheus"`, so every verdict comes from PromQL.

The releases of `gallery` build on each other (1.0.0 installed, then the others), so
the tests of this module run in order on one stack of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.prometheus import find_prometheus
from pipeline.models import Outcome, ReleaseResult
from tests.helpers.local import free_port, local_environment
from tests.helpers.real_stack import SERVICE, start_release, until
from workflows.release import ReleaseWorkflow

NO_PROMETHEUS = "no `prometheus` binary on PATH: install it with scripts/system-deps.sh (apt-get install -y prometheus)"
if find_prometheus() is None:
    print(f"\nskipping tests/test_prometheus_integration.py: {NO_PROMETHEUS}")

pytestmark = [pytest.mark.integration, pytest.mark.skipif(find_prometheus() is None, reason=NO_PROMETHEUS)]

QUIET_SERVICE = "quiet"
PROMETHEUS_POLICY = {
    "metrics_provider": "prometheus",
    "canary_weight": 20,
    "canary_duration_seconds": 6,
    "analysis_interval_seconds": 3,
    "steps": [50, 100],
    "step_interval_seconds": 3,
    "retire_delay_seconds": 1,
    "bake_seconds": 0,
    "min_requests": 5,
    "test_suites": ["unit"],
    "required_approvals": [],
}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    local = local_environment(tmp_path_factory.mktemp("prometheus-stack"))
    async with local_stack(local, task_queue="releases-prometheus", prometheus_port=free_port()) as stack:
        yield stack


async def release(stack: Stack, version: str, service: str = SERVICE, **overrides: Any) -> WorkflowHandle:
    return await start_release(stack, version, {**PROMETHEUS_POLICY, **overrides.pop("policy", {})}, service, **overrides)


async def result_of(handle: WorkflowHandle) -> ReleaseResult:
    return await asyncio.wait_for(handle.result(), 150)


async def test_first_release_installs_the_service(stack: Stack, load: LoadGenerator):
    result = await result_of(await release(stack, "1.0.0"))
    assert result.outcome is Outcome.PROMOTED, result.reason


async def test_healthy_canary_passes_on_prometheus_metrics(stack: Stack, load: LoadGenerator):
    result = await result_of(await release(stack, "2.0.0"))

    assert result.outcome is Outcome.PROMOTED, result.reason
    analysis = result.last_analysis
    assert analysis is not None and analysis.verdict == "pass" and analysis.canary_requests >= 5
    assert {check.metric for check in analysis.checks} == {"error_rate", "p95_latency_ms"}
    assert all(check.passed for check in analysis.checks)
    assert "shoot_completion_rate" in analysis.canary_values  # business metrics are recorded, without data locally


async def test_canary_with_injected_errors_rolls_back_naming_the_breached_rule(stack: Stack, load: LoadGenerator):
    handle = await release(
        stack, "3.0.0", env={"GALLERY_ERROR_RATE": "0.5"},
        policy={"thresholds": {"error_rate": {"max": 0.01, "severity": "fast"}}},
    )
    result = await result_of(handle)

    assert result.outcome is Outcome.ROLLED_BACK, result.reason
    assert result.breach is not None and result.breach.metric == "error_rate" and result.breach.value > 0.2
    assert "error_rate" in result.reason and "<= 0.01" in result.reason
    assert result.canary_weight == 0 and result.stable_version == "2.0.0"


async def test_baseline_comparison_on_prometheus_samples_passes_an_equal_canary(stack: Stack, load: LoadGenerator):
    baseline = {"metrics": {"error_rate": {"direction": "increase", "allowed_effect": 0.5, "critical": True}}, "sample_seconds": 2, "min_samples": 3}
    timing = {"canary_duration_seconds": 10, "analysis_interval_seconds": 10, "steps": [100], "step_interval_seconds": 10}
    handle = await release(stack, "4.0.0", policy={**timing, "baseline": baseline})
    result = await result_of(handle)

    assert result.outcome is Outcome.PROMOTED, result.reason
    assert result.last_analysis.canary_weight == 100 and result.last_analysis.baseline is None  # stable serves nothing
    timeline = [entry.message for entry in (await handle.query(ReleaseWorkflow.status)).timeline]
    assert any("analysis pass" in message and "baseline score 100 (pass" in message for message in timeline), timeline


async def test_canary_without_traffic_is_never_promoted(stack: Stack):
    """No load reaches this service: every check is inconclusive, and by policy the
    release pauses for a human instead of moving traffic."""
    installed = await result_of(await release(stack, "1.0.0", service=QUIET_SERVICE))
    assert installed.outcome is Outcome.PROMOTED, installed.reason
    handle = await release(stack, "2.0.0", service=QUIET_SERVICE, policy={"max_inconclusive_checks": 2, "on_inconclusive": "pause"})

    paused = await until(handle, lambda s: s.paused, within=90)
    assert paused.canary_weight == 20 and paused.last_analysis.verdict == "inconclusive"
    assert any("paused for a human decision" in entry.message for entry in paused.timeline)
    await handle.signal(ReleaseWorkflow.kill_switch, {"reason": "no traffic to judge", "actor": "alice"})
    result = await result_of(handle)
    assert result.outcome is Outcome.ROLLED_BACK and result.stable_version == "1.0.0"
