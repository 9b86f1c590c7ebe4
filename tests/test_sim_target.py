"""The sim target (pipeline/targets/sim.py) and its model, provider and scenario:
draws that a seed repeats, faults that shape the metrics, weights that route the
requests, the target's slots and rollback window; then whole releases of the real
ReleaseWorkflow, with the real activities, on the sim target and the time-skipping
server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.worker import Worker

from activities import ALL as ACTIVITIES
from pipeline.errors import PermanentTargetError
from pipeline.metrics.sim import SimMetrics
from pipeline.models import Metric, ObserveRequest, Outcome, ServiceRef, Slot, TrafficRequest
from pipeline.sim.fleet import Fleet, worker_fleet
from pipeline.sim.measure import UNMODELLED, p95_latency_ms
from pipeline.sim.model import Faults, Served
from pipeline.sim.scenario import Scenario, ScenarioError, VersionFaults, load_scenario
from pipeline.targets.sim import SimTarget
from workflows import ALL as WORKFLOWS
from workflows.release import ReleaseWorkflow

SERVICE = "shop"
MINUTE = 60.0
REF = ServiceRef(release_id="r1", service=SERVICE, target="sim")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fleet_with(clock: FakeClock, **scenario) -> Fleet:
    return Fleet(scenario=Scenario(**{"segment_share": 0.0, **scenario}), clock=clock)


def traffic(weight: int, sequence: int = 1, segments: bool = False) -> TrafficRequest:
    return TrafficRequest(
        ref=REF, sequence=sequence, canary_weight=weight, segments_to_canary=segments, canary_segments=["beta"]
    )


async def canary_at(fleet: Fleet, weight: int, env: dict[str, str] | None = None) -> SimTarget:
    """1.0.0 stable, 2.0.0 canary with `env`, `weight` percent routed to it."""
    target = SimTarget(fleet)
    fleet.install(SERVICE, "1.0.0")
    await target.deploy(SERVICE, Slot.CANARY, "2.0.0", env or {})
    await target.set_traffic(traffic(weight))
    return target


async def observe(fleet: Fleet, clock: FakeClock, seconds: float, sampled: list[Metric] | None = None):
    """The observation of the next `seconds` of release time."""
    request = ObserveRequest(ref=REF, sampled=sampled or [])
    provider = SimMetrics(fleet, request)
    cursor = (await provider.observe(SERVICE, {})).cursor
    clock.now += seconds
    return await provider.observe(SERVICE, cursor)


# --- the model and the provider ----------------------------------------------------------------


async def test_a_seed_repeats_its_draws_and_another_seed_does_not(clock):
    observations = []
    for seed in ("a", "a", "b"):
        fleet = fleet_with(FakeClock(), seed=seed)
        await canary_at(fleet, 50, {"GALLERY_ERROR_RATE": "0.1"})
        observations.append(await observe(fleet, fleet.clock, MINUTE))
    assert observations[0] == observations[1]
    assert observations[0].canary.values != observations[2].canary.values


async def test_first_observation_opens_an_empty_window(clock):
    fleet = fleet_with(clock)
    await canary_at(fleet, 50)
    first = await SimMetrics(fleet, ObserveRequest(ref=REF)).observe(SERVICE, {})
    assert first.window_seconds == 0 and first.canary.requests == 0 and first.cursor == {"taken_at": clock.now}


async def test_weights_route_that_share_of_the_requests_to_the_canary(clock):
    fleet = fleet_with(clock, requests_per_second=100)
    await canary_at(fleet, 25)
    observation = await observe(fleet, clock, MINUTE)
    assert observation.canary.requests + observation.stable.requests == 6000
    assert 0.22 < observation.canary.requests / 6000 < 0.28


async def test_canary_segments_add_their_share_while_segments_route(clock):
    fleet = fleet_with(clock, requests_per_second=100, segment_share=0.2)
    target = await canary_at(fleet, 0)
    assert (await observe(fleet, clock, MINUTE)).canary.requests == 0
    await target.set_traffic(traffic(0, sequence=2, segments=True))
    assert 0.17 < (await observe(fleet, clock, MINUTE)).canary.requests / 6000 < 0.23


async def test_error_rate_and_latency_faults_show_on_the_canary_only(clock):
    fleet = fleet_with(clock, requests_per_second=50)
    await canary_at(fleet, 50, {"GALLERY_ERROR_RATE": "0.2", "GALLERY_LATENCY_MS": "600"})
    observation = await observe(fleet, clock, MINUTE)
    canary, stable = observation.canary.values, observation.stable.values
    assert 0.15 < canary[Metric.ERROR_RATE] < 0.25 and stable[Metric.ERROR_RATE] == 0
    assert canary[Metric.P95_LATENCY_MS] > 600 > 100 > stable[Metric.P95_LATENCY_MS]
    assert canary[Metric.GALLERY_AVAILABILITY] == pytest.approx(1 - canary[Metric.ERROR_RATE])


async def test_degradation_starts_that_long_after_the_version_did(clock):
    fleet = fleet_with(clock)
    await canary_at(fleet, 50, {"GALLERY_ERROR_RATE": "0.5", "GALLERY_FAULTS_AFTER_SECONDS": str(20 * MINUTE)})
    assert (await observe(fleet, clock, 10 * MINUTE)).canary.values[Metric.ERROR_RATE] == 0
    clock.now += 10 * MINUTE
    assert (await observe(fleet, clock, MINUTE)).canary.values[Metric.ERROR_RATE] > 0.3


async def test_a_crash_fails_every_later_request_and_the_health_check(clock):
    fleet = fleet_with(clock)
    target = await canary_at(fleet, 50, {"SIM_CRASH_AFTER_SECONDS": str(5 * MINUTE)})
    assert (await target.health(SERVICE, "2.0.0")).healthy
    clock.now += 5 * MINUTE
    assert (await observe(fleet, clock, MINUTE)).canary.values[Metric.ERROR_RATE] == 1.0
    assert (await target.health(SERVICE, "2.0.0")).detail == "crashed in canary"
    with pytest.raises(PermanentTargetError, match="crashed"):
        await target.wait_ready(SERVICE, Slot.CANARY, "2.0.0", print)


async def test_the_latency_distribution_follows_its_median_and_shape(clock):
    fleet = fleet_with(clock, requests_per_second=200)
    await canary_at(fleet, 50, {"SIM_LATENCY_MEDIAN_MS": "100", "SIM_LATENCY_SIGMA": "0.5"})
    p95 = (await observe(fleet, clock, MINUTE)).canary.values[Metric.P95_LATENCY_MS]
    assert 100 * 2.0 < p95 < 100 * 2.6  # exp(1.645 * 0.5) = 2.28


async def test_samples_come_per_slice_and_unmodelled_metrics_say_so(clock):
    fleet = fleet_with(clock)
    await canary_at(fleet, 50)
    request = ObserveRequest(ref=REF, metrics=[Metric.REVENUE_PROXY],
                             sampled=[Metric.P95_LATENCY_MS], sample_seconds=5)
    provider = SimMetrics(fleet, request)
    cursor = (await provider.observe(SERVICE, {})).cursor
    clock.now += MINUTE
    canary = (await provider.observe(SERVICE, cursor)).canary
    assert len(canary.samples[Metric.P95_LATENCY_MS]) == 12
    assert canary.values[Metric.REVENUE_PROXY] is None and canary.missing[Metric.REVENUE_PROXY] == UNMODELLED


def test_p95_is_the_nearest_rank_percentile():
    served = [Served(at=0, failed=False, latency_ms=float(ms)) for ms in range(1, 101)]
    assert p95_latency_ms(served) == 95 and p95_latency_ms([]) is None


def test_env_knobs_are_clamped_and_a_bad_one_is_named():
    assert Faults.from_env({"GALLERY_ERROR_RATE": "3", "GALLERY_LATENCY_MS": "-5"}) == Faults(error_rate=1.0)
    with pytest.raises(ValueError, match="SIM_CRASH_AFTER_SECONDS='soon' is not a number"):
        Faults.from_env({"SIM_CRASH_AFTER_SECONDS": "soon"})


# --- the scenario ------------------------------------------------------------------------------


def test_a_scenario_overrides_the_env_per_version():
    scenario = Scenario(versions={"2.0.0": VersionFaults(error_rate=0.3)})
    assert scenario.faults_of("2.0.0", {"GALLERY_ERROR_RATE": "0.01", "GALLERY_LATENCY_MS": "5"}) == Faults(
        error_rate=0.3, latency_ms=5
    )
    assert scenario.faults_of("1.0.0", {}) == Faults()


@pytest.mark.parametrize("text, problem", [
    ("{", "Invalid JSON"),
    ('{"versions": {"2.0.0": {"error_rat": 0.1}}}', "versions.2.0.0.error_rat: Extra inputs are not permitted"),
    ('{"versions": {"2.0.0": {"error_rate": 2}}}', "versions.2.0.0.error_rate: Input should be less than or equal to 1"),
])
def test_a_bad_scenario_file_is_named_with_what_is_wrong(tmp_path: Path, text, problem):
    path = tmp_path / "scenario.json"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot be read"):
        load_scenario(tmp_path / "missing.json")


# --- the target --------------------------------------------------------------------------------


async def test_deploy_is_idempotent_and_refuses_bad_knobs(clock):
    target = SimTarget(fleet_with(clock))
    assert await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"A": "1"})
    assert not await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"A": "1"})
    assert await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"A": "2"})
    with pytest.raises(PermanentTargetError, match="GALLERY_ERROR_RATE='lots'"):
        await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"GALLERY_ERROR_RATE": "lots"})
    with pytest.raises(PermanentTargetError, match="not stable"):
        await target.deploy(SERVICE, Slot.STABLE, "2.0.0", {})


async def test_a_stale_traffic_change_is_ignored(clock):
    fleet = fleet_with(clock)
    target = await canary_at(fleet, 50)
    assert await target.set_traffic(traffic(0, sequence=3))
    assert not await target.set_traffic(traffic(50, sequence=2))
    assert fleet.service(SERVICE).routing.canary_weight == 0


async def test_promote_keeps_the_previous_version_warm_and_revert_swaps_back(clock):
    fleet = fleet_with(clock)
    target = await canary_at(fleet, 100, {"MODE": "new"})
    assert await target.promote(SERVICE, release_id="r1", keep=2) == "1.0.0"
    assert await target.promote(SERVICE, release_id="r1", keep=2) == "1.0.0"  # a retry
    window = await target.rollback_window(SERVICE)
    assert (window.stable, [v.version for v in window.versions], window.warm) == ("2.0.0", ["1.0.0"], ["1.0.0"])
    assert fleet.service(SERVICE).routing.canary_weight == 0
    assert await target.revert(SERVICE, "1.0.0") and not await target.revert(SERVICE, "1.0.0")
    window = await target.rollback_window(SERVICE)
    assert (window.stable, window.older, window.warm) == ("1.0.0", ["2.0.0"], ["2.0.0"])
    assert await target.retire(SERVICE, "2.0.0") and not await target.retire(SERVICE, "2.0.0")
    with pytest.raises(PermanentTargetError, match="not warm"):
        await target.revert(SERVICE, "2.0.0")


async def test_preflight_reports_every_suite_missing_since_the_sim_runs_none(clock):
    target = SimTarget(fleet_with(clock))
    report = await target.preflight(SERVICE, ["unit", "e2e"])
    assert report.missing_suites == ["unit", "e2e"] and report.stable_version is None


# --- whole releases on the sim target ----------------------------------------------------------

NO_GATES = {"required_approvals": [], "test_suites": []}
"""The default policy (a 30-minute canary, four 5-minute steps, a 10-minute bake) with
nobody to wait for and no suites, which the sim cannot run."""


async def release_on_sim(env, env_vars: dict[str, str], **policy):
    """A release of 2.0.0 over a stable 1.0.0 on this worker's sim fleet, run to its result."""
    service = f"sim-{uuid.uuid4().hex[:8]}"
    worker_fleet().reset(Scenario())  # the fleet is this process's: a simulation may have left its scenario
    worker_fleet().install(service, "1.0.0")
    request = {"service": service, "version": "2.0.0", "target": "sim", "env": env_vars, "policy": {**NO_GATES, **policy}}
    async with Worker(env.client, task_queue=f"sim-{service}", workflows=WORKFLOWS, activities=ACTIVITIES):
        result = await env.client.execute_workflow(
            ReleaseWorkflow.run, request, id=f"release-{service}", task_queue=f"sim-{service}"
        )
    return result, worker_fleet().service(service)


async def test_a_good_version_is_promoted_through_every_step(time_skipping_env):
    result, state = await release_on_sim(time_skipping_env, {})
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert state.version_in(Slot.STABLE) == "2.0.0" and state.version_in(Slot.CANARY) is None
    assert [v.version for v in state.history.versions] == ["2.0.0", "1.0.0"]


async def test_a_failing_canary_is_rolled_back_on_its_error_rate(time_skipping_env):
    result, state = await release_on_sim(time_skipping_env, {"GALLERY_ERROR_RATE": "0.3"})
    assert result.outcome is Outcome.ROLLED_BACK, result.reason
    assert result.breach.metric is Metric.ERROR_RATE and result.breach.value > 0.15  # about 110 requests: 3.4 sd
    assert "at 10% canary traffic" in result.reason
    assert state.version_in(Slot.STABLE) == "1.0.0" and state.routing.canary_weight == 0


async def test_a_slow_leak_is_caught_in_release_time_at_the_step_it_starts(time_skipping_env):
    """Latency from 41m40s after the canary started: in the 75% step (40 to 45 minutes)."""
    result, _ = await release_on_sim(time_skipping_env, {"GALLERY_LATENCY_MS": "800", "GALLERY_FAULTS_AFTER_SECONDS": "2500"})
    assert result.outcome is Outcome.ROLLED_BACK
    assert result.breach.metric is Metric.P95_LATENCY_MS and result.breach.value > 800
    assert "at 75% canary traffic" in result.reason


async def test_the_baseline_comparison_gets_samples_and_catches_a_slower_canary(time_skipping_env):
    """60 ms more on a 40 ms median: within the 500 ms threshold, but worse than stable."""
    baseline = {"metrics": {"p95_latency_ms": {"allowed_effect": 0.2}}}
    result, _ = await release_on_sim(time_skipping_env, {"GALLERY_LATENCY_MS": "60"}, baseline=baseline)
    assert result.outcome is Outcome.ROLLED_BACK
    assert "p95_latency_ms worse than stable: Mann-Whitney U" in result.reason
