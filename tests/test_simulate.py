"""`releasectl simulate` (pipeline/simulate.py): the request as the sim can run it, bad
input named before anything starts, and whole simulations of the real ReleaseWorkflow
on the time-skipping server with the sim target, read from the command's output."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from pipeline import cli
from pipeline.models import Metric, Outcome, Stage
from pipeline.sim.history import HistoryError, recorded_release
from pipeline.simulate import EXIT_NOT_PROMOTED, for_simulation, simulate_history

REQUEST = {"service": "shop", "version": "2.0.0"}


def write(directory: Path, name: str, content: object) -> str:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_request_is_adjusted_to_what_the_sim_runs_and_each_change_is_said():
    raw = {**REQUEST, "target": "kubernetes", "policy": {"metrics_provider": "prometheus", "canary_weight": 20}}
    request, adjustments = for_simulation(raw)
    assert request.target == "sim" and request.policy.canary_weight == 20
    assert request.policy.test_suites == [] and request.policy.required_approvals == []
    assert request.policy.metrics_provider is None
    assert adjustments == [
        "target kubernetes simulated on the sim target",
        "test suites not run: unit, integration, e2e, performance, security",
        "approvals given at once: canary, production",
        "metrics from the sim's model, not the policy's provider or queries",
    ]


def test_a_request_the_sim_can_run_as_it_is_is_not_adjusted():
    raw = {**REQUEST, "target": "sim", "policy": {"test_suites": [], "required_approvals": []}}
    request, adjustments = for_simulation(raw)
    assert adjustments == [] and request.policy.required_approvals == []
    assert for_simulation({**REQUEST, "policy": {"required_approvals": ["production"]}})[0].policy.required_approvals == []
    assert Stage.PRODUCTION.value in for_simulation({**REQUEST, "policy": {"required_approvals": ["production"]}})[1][2]


@pytest.mark.parametrize("request_text, scenario, message", [
    ("{not json", None, "is not valid JSON"),
    (json.dumps({**REQUEST, "policy": {"canary_weight": 0}}), None, "policy.canary_weight"),
    (json.dumps(REQUEST), "[", "Invalid JSON"),
    (json.dumps(REQUEST), {"versions": {"2.0.0": {"p99": 1}}}, "versions.2.0.0.p99: Extra inputs are not permitted"),
    (json.dumps(REQUEST), {"versions": {"9.9.9": {"error_rate": 0.1}}}, "names version '9.9.9', which is neither"),
    (json.dumps({**REQUEST, "revert": {"actor": "a", "reason": "b"}}), None, "not reverts or migrations"),
])
def test_bad_input_is_named_and_exits_non_zero(tmp_path, capsys, request_text, scenario, message):
    argv = ["simulate", write(tmp_path, "request.json", request_text)]
    if scenario is not None:
        argv += ["--scenario", write(tmp_path, "scenario.json", scenario)]
    assert cli.run_cli(argv) == cli.EXIT_ERROR
    assert message in capsys.readouterr().err


def test_a_missing_file_is_named(tmp_path, capsys):
    assert cli.run_cli(["simulate", str(tmp_path / "absent.json")]) == cli.EXIT_ERROR
    assert "cannot read request file" in capsys.readouterr().err


def test_a_good_release_is_simulated_to_promotion_through_every_step(tmp_path, capsys):
    assert cli.run_cli(["simulate", write(tmp_path, "request.json", REQUEST)]) == 0
    output = capsys.readouterr().out
    assert "adjusted: approvals given at once: canary, production" in output
    steps = re.findall(r"\+0:(\d\d):\d\d  progressive_shift  (\d+)% of traffic on 2.0.0", output)
    assert steps == [("30", "25"), ("35", "50"), ("40", "75"), ("45", "100")]
    assert "\npromoted: 2.0.0 is stable with all traffic" in output


def test_a_scenario_incident_rolls_back_at_the_step_it_starts_in_and_json_tells_ci(tmp_path, capsys):
    """Latency from 41m40s after the canary started: the 75% step (40 to 45 minutes)."""
    scenario = {"seed": "incident-42", "stable_version": "1.0.0",
                "versions": {"2.0.0": {"latency_ms": 800, "faults_after_seconds": 2500}}}
    argv = ["simulate", write(tmp_path, "request.json", REQUEST), "--scenario", write(tmp_path, "s.json", scenario), "--json"]
    assert cli.run_cli(argv) == EXIT_NOT_PROMOTED
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == Outcome.ROLLED_BACK.value and "at 75% canary traffic" in report["reason"]
    assert report["breach"]["metric"] == Metric.P95_LATENCY_MS.value and report["result"]["stable_version"] == "1.0.0"
    after = [entry["after_seconds"] for entry in report["timeline"]]
    assert after == sorted(after) and 2500 < after[-1] < 2700
    verdicts = [entry["message"] for entry in report["timeline"] if entry["message"].startswith("analysis")]
    assert verdicts[-1].startswith("analysis fail: p95_latency_ms") and len(verdicts) > 40


# --- replaying a past release's history -------------------------------------------------------

HISTORIES = Path(__file__).parent / "histories"


def recorded(name: str) -> WorkflowHistory:
    path = HISTORIES / f"{name}.json"
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


@pytest.mark.parametrize("name", ["rolled_back", "rolled_back_in_bake", "promoted"])
async def test_a_replayed_history_reaches_the_real_releases_verdicts(name):
    """The recorded releases ran on the local target against FakeWorld's metrics; the
    simulation serves the windows they read to the real workflow on the sim target."""
    history = recorded(name)
    real = recorded_release(history)
    simulation = await simulate_history(history)
    assert real.result is not None and len(real.observations) > 1
    assert (simulation.result.outcome, simulation.result.reason) == (real.result.outcome, real.result.reason)
    assert simulation.result.breach == real.result.breach
    simulated_last, real_last = simulation.result.last_analysis, real.result.last_analysis
    assert (simulated_last.verdict, simulated_last.summary) == (real_last.verdict, real_last.summary)
    assert simulation.adjustments[-1] == f"metrics: the {len(real.observations)} windows {history.workflow_id} read, in order"


async def test_a_stricter_policy_tried_against_a_past_release_rolls_back_where_it_promoted():
    """The promoted release's canary answered slower than 1 ms: a policy asking for that fails it."""
    history = recorded("promoted")
    request = recorded_release(history).request
    latencies = [window.canary.values.get(Metric.P95_LATENCY_MS) for window in recorded_release(history).observations]
    assert max(latency or 0 for latency in latencies) > 1
    strict = {**request, "policy": {**request.get("policy", {}), "thresholds": {"p95_latency_ms": {"max": 1}}}}
    simulation = await simulate_history(history, strict)
    assert simulation.result.outcome is Outcome.ROLLED_BACK
    assert simulation.result.breach.metric is Metric.P95_LATENCY_MS


@pytest.mark.parametrize("name, message", [
    ("trains/promoted", "is a ReleaseTrainWorkflow, not a release"),
    ("reverted", "is not a release of a version"),
])
def test_a_history_that_is_not_a_release_is_named(name, message):
    with pytest.raises(HistoryError, match=message):
        recorded_release(recorded(name))


async def test_from_history_names_a_release_that_does_not_exist_or_is_not_a_release(dev_server, monkeypatch, capsys):
    client = dev_server.client
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    await client.start_workflow("InventoryWorkflow", id="inventory-1", task_queue="nobody-polls")
    assert await asyncio.to_thread(cli.run_cli, ["simulate", "--from-history", "release-absent"]) == cli.EXIT_ERROR
    assert "no release 'release-absent' in namespace default" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.run_cli, ["simulate", "--from-history", "inventory-1"]) == cli.EXIT_ERROR
    assert "'inventory-1' is a InventoryWorkflow, not a release" in capsys.readouterr().err


def test_simulate_needs_a_request_or_a_history(capsys):
    assert cli.run_cli(["simulate"]) == cli.EXIT_ERROR
    assert "give REQUEST.json, or --from-history RELEASE_ID" in capsys.readouterr().err
