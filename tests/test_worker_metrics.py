"""The worker's Prometheus endpoint during real releases: the Temporal dev server, a
worker whose runtime serves metrics (pipeline/telemetry.py), scraped over real HTTP
and parsed with prometheus_client's parser. The world behind the activities is
FakeWorld (no target, router or metrics provider to deploy to here): what is under
test is what the workflow reports, not what the activities touch.

Also checks that every metric the Grafana dashboard (deploy/grafana/) queries is in
the scrape, so the dashboard never graphs a name the worker does not export; that a
real Prometheus scraping the worker runs every query and alert rule; and that
`releasectl dora` reads the module's releases back from Temporal. The tests build on
each other's releases (one service), so they run in order."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from pipeline import dora, telemetry
from pipeline.cli_input import CliError, release_query
from pipeline.local.prometheus import find_prometheus
from pipeline.models import Outcome
from pipeline.temporal import TemporalSettings
from tests.helpers.fakes import FAILING, HEALTHY, FakeWorld
from tests.helpers.harness import start_dev_server
from tests.helpers.local import free_port
from tests.helpers.real_stack import FAST_POLICY
from tests.helpers.scrape import (
    PrometheusServer,
    Scraper,
    as_prometheus_runs_it,
    dashboard_expressions,
    dashboard_metrics,
    promql_metrics,
    value_of,
)
from workers.main import workflow_runner
from workflows import ALL as WORKFLOWS
from workflows import lock as lock_module
from workflows.release import ReleaseWorkflow

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "release-pipeline.json"
TASK_QUEUE = "releases-metrics"
POLICY = {
    **FAST_POLICY,
    "canary_duration_seconds": 3,
    "analysis_interval_seconds": 1,
    "step_interval_seconds": 1,
    "bake_seconds": 1,
    "test_suites": ["unit"],
}


@dataclass
class Metered:
    client: Client
    scraper: Scraper
    world: FakeWorld


@pytest_asyncio.fixture(scope="module")
async def metered() -> AsyncIterator[Metered]:
    """A worker on the dev server whose runtime serves Prometheus metrics, as
    WORKER_METRICS_ADDRESS makes the real worker's do."""
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=telemetry.telemetry_config(address))
    async with await start_dev_server() as env:
        client = await Client.connect(
            env.client.service_client.config.target_host,
            namespace=env.client.namespace,
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
        world = FakeWorld()
        async with Worker(
            client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities(),
            workflow_runner=workflow_runner(),
        ):
            yield Metered(client, Scraper(address), world)


async def start(client: Client, service: str, version: str, **request: Any) -> WorkflowHandle:
    return await client.start_workflow(
        ReleaseWorkflow.run,
        {"service": service, "version": version, "target": "local", "policy": POLICY, **request},
        id=f"release-{service}-{version}-{uuid.uuid4().hex[:6]}",
        task_queue=TASK_QUEUE,
    )


async def approve_when_asked(handle: WorkflowHandle, stage: str) -> None:
    async with asyncio.timeout(30):
        while (await handle.query(ReleaseWorkflow.status)).pending_approval != stage:
            await asyncio.sleep(0.1)
    await handle.signal(ReleaseWorkflow.approve, {"stage": stage, "approver": "alice"})


@pytest.fixture(scope="module")
def service() -> str:
    return f"metered-{uuid.uuid4().hex[:6]}"


async def test_canary_weight_gauge_follows_the_traffic_and_a_promotion_is_counted(metered, service):
    client, scraper = metered.client, metered.scraper
    metered.world.canary_health = lambda weight: HEALTHY
    committed = datetime.now(UTC) - timedelta(hours=1)
    handle = await start(client, service, "2.0.0", commit_time=committed.isoformat())
    await approve_when_asked(handle, "canary")

    weight = telemetry.CANARY_WEIGHT
    during = await scraper.until(lambda s: value_of(s, weight, service=service) == 20)
    assert value_of(during, telemetry.PHASE, service=service, phase="canary") == 1
    assert value_of(during, telemetry.PHASE, service=service, phase="canary_approval") == 0
    await approve_when_asked(handle, "production")
    await scraper.until(lambda s: value_of(s, weight, service=service) == 50)
    result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome is Outcome.PROMOTED, result.reason
    after = await scraper.scrape()
    assert value_of(after, weight, service=service) == 100
    assert value_of(after, "release_started_total", service=service) == 1
    assert value_of(after, "release_ended_total", service=service, outcome="promoted") == 1
    assert value_of(after, "release_ended_total", service=service, outcome="rolled_back") == 0
    assert value_of(after, "release_approval_wait_seconds_count", service=service, stage="canary") == 1
    assert value_of(after, "release_analysis_checks_total", service=service, metric="error_rate", verdict="pass") >= 3
    assert value_of(after, telemetry.PHASE, service=service, phase="done") == 1


async def test_a_breach_counts_one_rollback_by_its_cause_and_the_time_to_stable(metered, service):
    client, scraper = metered.client, metered.scraper
    metered.world.canary_health = lambda weight: FAILING
    before = await scraper.scrape()
    assert value_of(before, "release_rollbacks_total", service=service, cause="breach") == 0
    handle = await start(client, service, "3.0.0")
    await approve_when_asked(handle, "canary")
    result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome is Outcome.ROLLED_BACK and result.breach is not None
    after = await scraper.scrape()
    assert value_of(after, "release_rollbacks_total", service=service, cause="breach") == 1
    assert value_of(after, "release_rollbacks_total", service=service, cause="kill_switch") == 0
    assert value_of(after, "release_ended_total", service=service, outcome="rolled_back") == 1
    assert value_of(after, telemetry.CANARY_WEIGHT, service=service) == 0
    assert value_of(after, "release_breach_to_stable_seconds_count", service=service) == 1
    assert value_of(after, "release_analysis_checks_total", service=service, metric="error_rate", verdict="fail") >= 1


async def test_a_kill_switch_counts_as_its_own_cause(metered, service):
    client, scraper = metered.client, metered.scraper
    metered.world.canary_health = lambda weight: HEALTHY
    handle = await start(client, service, "4.0.0")
    await approve_when_asked(handle, "canary")
    await scraper.until(lambda s: value_of(s, telemetry.CANARY_WEIGHT, service=service) == 20)
    await handle.signal(ReleaseWorkflow.kill_switch, {"actor": "oncall", "reason": "pager"})
    result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome is Outcome.ROLLED_BACK
    after = await scraper.scrape()
    assert value_of(after, "release_rollbacks_total", service=service, cause="kill_switch") == 1
    assert value_of(after, "release_rollbacks_total", service=service, cause="breach") == 1
    assert value_of(after, "release_breach_to_stable_seconds_count", service=service) == 2


async def test_a_release_that_dies_holding_its_lock_counts_as_an_orphaned_rollback(metered, monkeypatch):
    """Its lock rolls the service back; unsandboxed so that the lock checks every second."""
    monkeypatch.setattr(lock_module, "HOLDER_CHECK_SECONDS", 1)
    client, scraper, queue = metered.client, metered.scraper, f"orphans-{uuid.uuid4().hex[:6]}"
    orphan = f"orphan-{uuid.uuid4().hex[:6]}"
    metered.world.canary_health = lambda weight: HEALTHY
    async with Worker(
        client, task_queue=queue, workflows=WORKFLOWS, activities=metered.world.activities(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReleaseWorkflow.run, {"service": orphan, "version": "2.0.0", "policy": {**POLICY, "required_approvals": []}},
            id=f"release-{orphan}", task_queue=queue,
        )
        await scraper.until(lambda s: value_of(s, telemetry.CANARY_WEIGHT, service=orphan) == 20)
        await handle.terminate("operator ended it by hand")
        after = await scraper.until(lambda s: value_of(s, "release_rollbacks_total", service=orphan, cause="orphaned") == 1)

    assert value_of(after, "release_ended_total", service=orphan) == 0  # it never ended: it was terminated
    orphaned = [labels for (name, labels), _ in after.items() if name == "release_rollbacks_total" and
                ("service", orphan) in labels and ("cause", "orphaned") in labels]
    assert len(orphaned) == 1  # the series the release showed at 0: increase() sees the rollback
    assert value_of(after, telemetry.CANARY_WEIGHT, service=orphan) == 0
    assert value_of(after, telemetry.PHASE, service=orphan, phase="done") == 1
    assert value_of(after, telemetry.PHASE, service=orphan, phase="canary") == 0


async def test_a_gate_hold_shows_while_it_holds_and_is_counted(metered, monkeypatch, tmp_path):
    """A gates file broken mid-release holds production at the window gate until it is fixed."""
    client, scraper, held = metered.client, metered.scraper, f"held-{uuid.uuid4().hex[:6]}"
    gates_file = tmp_path / "gates.json"
    gates_file.write_text("{}")
    monkeypatch.setenv("PIPELINE_GATES_FILE", str(gates_file))  # the worker runs in-process
    metered.world.canary_health = lambda weight: HEALTHY
    policy = {"required_approvals": [], "live_activity_recheck_seconds": 1}
    handle = await start(client, held, "2.0.0", policy={**POLICY, **policy})
    await scraper.until(lambda s: value_of(s, telemetry.CANARY_WEIGHT, service=held) == 20)
    gates_file.write_text("{not json")

    holding = await scraper.until(lambda s: value_of(s, telemetry.GATE_HELD, service=held, gate="window") == 1)
    assert value_of(holding, "release_gate_holds_total", service=held, gate="window") == 1
    assert value_of(holding, telemetry.CANARY_WEIGHT, service=held) == 20
    gates_file.write_text("{}")
    assert (await asyncio.wait_for(handle.result(), 60)).outcome is Outcome.PROMOTED
    after = await scraper.scrape()
    assert value_of(after, telemetry.GATE_HELD, service=held, gate="window") == 0
    assert value_of(after, "release_gate_holds_total", service=held, gate="live_activity") == 0


async def test_dora_reads_these_releases_from_temporal(metered, service, capsys):
    client = metered.client
    settings = TemporalSettings(address=client.service_client.config.target_host, namespace=client.namespace)
    ended = f'{release_query(service, running=False)} AND ExecutionStatus="Completed"'
    async with asyncio.timeout(30):  # visibility follows the releases' ends closely, not at once
        while (await client.count_workflows(ended)).count < 3:
            await asyncio.sleep(0.2)

    assert await dora.dora_command(dora_args(service=service, since="1h", json=True), settings) == 0
    figures = json.loads(capsys.readouterr().out)["all"]
    assert (figures["releases"], figures["deployments"], figures["change_failure_rate"]) == (3, 1, 0.0)
    assert (figures["rollbacks_before_promotion"], figures["incidents_prevented"]) == (2, 1)
    assert figures["time_to_restore"]["count"] == 1 and figures["time_to_restore"]["max_seconds"] < 30
    assert figures["lead_time"]["count"] == 1 and 3600 < figures["lead_time"]["median_seconds"] < 3600 + 120

    with pytest.raises(CliError, match="unknown service 'nobody-here': Temporal has no release of it"):
        await dora.dora_command(dora_args(service="nobody-here"), settings)
    just_now = datetime.now(UTC).isoformat()
    with pytest.raises(CliError, match=f"no release of {service} ended since"):
        await dora.dora_command(dora_args(service=service, since=just_now), settings)


def dora_args(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"service": None, "since": "30d", "json": False, "prometheus": False, **given})


async def test_every_metric_the_dashboard_queries_is_exported(metered, service):
    # The SDK exports a counter from its first increment: one failed request makes
    # temporal_request_failure_total exist whatever the tests before this one did.
    with pytest.raises(RPCError):
        await metered.client.get_workflow_handle(f"no-such-release-{service}").describe()
    exported = {name for name, _ in await metered.scraper.scrape()}
    queried = dashboard_metrics(json.loads(DASHBOARD.read_text()))

    assert len(queried) >= 10
    assert any(name.startswith("temporal_") for name in queried)  # the SDK's own metrics are graphed too
    assert queried - exported == set(), f"not exported: {sorted(queried - exported)}"


@pytest.mark.skipif(find_prometheus() is None, reason="no prometheus binary (apt-get install -y prometheus)")
async def test_a_real_prometheus_runs_every_dashboard_query_and_alert_rule(metered, service, tmp_path):
    rules = DASHBOARD.with_name("release-pipeline-alerts.yml")
    async with PrometheusServer(tmp_path, metered.scraper.address, [rules]) as prometheus:
        weights = await prometheus.until(f'release_canary_weight_percent{{service="{service}"}}')
        assert weights[0]["value"][1] == "0"  # the last release was killed: all traffic on stable
        for expression in dashboard_expressions(json.loads(DASHBOARD.read_text())):
            answer = await prometheus.api("query", query=as_prometheus_runs_it(expression))
            assert answer["status"] == "success", (expression, answer)
        async with asyncio.timeout(30):  # every rule evaluated at least once
            while not (evaluated := [r for g in (await prometheus.api("rules"))["data"]["groups"] for r in g["rules"]]) \
                    or any(rule.get("lastEvaluation", "").startswith("0001") for rule in evaluated):
                await asyncio.sleep(0.2)
    assert len(evaluated) == 5 and {rule["health"] for rule in evaluated} == {"ok"}, evaluated


def test_promql_metric_names_are_read_from_expressions():
    assert promql_metrics('sum by (service, cause) (increase(release_rollbacks_total{service=~"$service"}[$__range]))') == {
        "release_rollbacks_total"
    }
    assert promql_metrics(
        "histogram_quantile(0.95, sum by (le) (rate(release_breach_to_stable_seconds_bucket[5m]))) / up"
    ) == {"release_breach_to_stable_seconds_bucket", "up"}



def worker_environment(metrics_address: str) -> dict[str, str]:
    """A worker whose Temporal server does not answer: it retries, its endpoint serves."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "WORKER_METRICS_ADDRESS": metrics_address,
        "PIPELINE_LOG_FORMAT": "json",
    }


async def test_the_worker_process_serves_metrics_where_its_configuration_says():
    address = f"127.0.0.1:{free_port()}"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.main", cwd=REPO, env=worker_environment(address),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(90), httpx.AsyncClient() as client:  # the worker imports for seconds
            while True:
                assert worker.returncode is None, f"worker exited with {worker.returncode}"
                try:
                    response = await client.get(f"http://{address}/metrics", timeout=2)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        assert response.status_code == 200 and "text/plain" in response.headers["content-type"]
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)


def test_a_metrics_address_that_cannot_be_served_stops_the_worker_naming_it():
    started = subprocess.run(
        [sys.executable, "-m", "workers.main"], cwd=REPO, env=worker_environment("localhost-9464"),
        capture_output=True, text=True, timeout=90,
    )
    assert started.returncode == 2
    assert "WORKER_METRICS_ADDRESS='localhost-9464'" in started.stdout + started.stderr
