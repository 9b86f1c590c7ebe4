"""A scripted stand-in for the world behind the activities, for workflow tests on
the time-skipping server. The real activities are exercised by the integration
tests; here only the workflow's decisions are under test, so the boundary
(targets, routers, metrics) is faked and every call is recorded. The gate
activities are the real ones: they only read the gates file and the HTTP endpoints
it names, which tests provide."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gates import check_calendar, check_live_activity, load_gates, notify
from activities.lock import release_state
from pipeline.models import (
    CheckOutcome,
    ConsistencyReport,
    ConsistencyRequest,
    MigrationRequest,
    MigrationResult,
    DeployRequest,
    Metric,
    Observation,
    ObserveRequest,
    PreflightReport,
    PreflightRequest,
    PromotedVersion,
    PromoteRequest,
    RollbackWindow,
    ServiceRef,
    SlotRequest,
    SuiteRequest,
    SuiteResult,
    TrafficRequest,
    VersionHealth,
    VersionMetrics,
    VersionRequest,
)

HEALTHY = VersionMetrics(requests=200, values={Metric.ERROR_RATE: 0.001, Metric.P95_LATENCY_MS: 120.0})
FAILING = VersionMetrics(requests=200, values={Metric.ERROR_RATE: 0.2, Metric.P95_LATENCY_MS: 120.0})
SLOW = VersionMetrics(requests=200, values={Metric.ERROR_RATE: 0.0, Metric.P95_LATENCY_MS: 900.0})
NO_TRAFFIC = VersionMetrics(requests=0, values={Metric.ERROR_RATE: None, Metric.P95_LATENCY_MS: None})


@dataclass
class FakeWorld:
    """Records each change the workflow asks for and answers with scripted health.

    `canary_health(weight)` gives the canary's metrics at a traffic weight;
    `promoted_health` the new version's once promoted (read on the stable track, as
    real providers do). `window` is the rollback window a revert reads, and versions
    in `unhealthy` fail their health check.
    """

    stable: str | None = "1.0.0"
    failing_suites: set[str] = field(default_factory=set)
    canary_health: Callable[[int], VersionMetrics] = lambda weight: HEALTHY
    stable_health: VersionMetrics = field(default_factory=lambda: HEALTHY)
    metrics_down: bool = False
    metrics_hang: bool = False
    """The metrics provider accepts the connection and never answers."""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    weight: int = 0
    hang_at_weights: set[int] = field(default_factory=set)
    promoted_health: VersionMetrics = field(default_factory=lambda: HEALTHY)
    promoted: bool = False
    window: RollbackWindow = field(
        default_factory=lambda: RollbackWindow(
            stable="1.0.0",
            versions=[PromotedVersion(version="0.9.0", env={"MODE": "old"}), PromotedVersion(version="0.8.0")],
            older=["0.7.0"],
            warm=["0.9.0"],
        )
    )
    unhealthy: set[str] = field(default_factory=set)
    revisions: dict[str, str | None] = field(default_factory=lambda: {"production": "0001", "staging": "0001"})
    failing_revisions: set[str] = field(default_factory=set)
    expand_problems: list[str] = field(default_factory=list)
    violations: Callable[[], dict[str, int | None]] = lambda: {}
    """Consistency checks' violation counts by name, read at each check (None: could not run)."""

    @property
    def weights(self) -> list[int]:
        return [arg for name, arg in self.calls if name == "set_traffic"]

    def called(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    def activities(self) -> list[Callable]:
        return [
            self.preflight,
            self.deploy_version,
            self.wait_ready,
            self.run_test_suite,
            self.set_traffic,
            self.stop_version,
            self.promote_version,
            self.revert_version,
            self.read_rollback_window,
            self.version_health,
            self.retire_version,
            self.migrate,
            self.check_expand,
            self.check_consistency,
            self.observe_metrics,
            load_gates,
            check_calendar,
            check_live_activity,
            notify,
            release_state,
        ]

    @activity.defn(name="preflight")
    async def preflight(self, request: PreflightRequest) -> PreflightReport:
        return PreflightReport(stable_version=self.stable)

    @activity.defn(name="deploy_version")
    async def deploy_version(self, request: DeployRequest) -> bool:
        self.calls.append(("deploy_version", (request.slot.value, request.version)))
        return True

    @activity.defn(name="wait_ready")
    async def wait_ready(self, request: DeployRequest) -> None:
        return None

    @activity.defn(name="run_test_suite")
    async def run_test_suite(self, request: SuiteRequest) -> SuiteResult:
        self.calls.append(("run_test_suite", request.suite))
        passed = request.suite not in self.failing_suites
        return SuiteResult(suite=request.suite, passed=passed, duration_seconds=0.1, detail="ok" if passed else "2 tests failed")

    @activity.defn(name="set_traffic")
    async def set_traffic(self, request: TrafficRequest) -> bool:
        if request.canary_weight in self.hang_at_weights:  # as a router that never answers
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.05)
        self.calls.append(("set_traffic", request.canary_weight))
        changed, self.weight = self.weight != request.canary_weight, request.canary_weight
        return changed

    @activity.defn(name="stop_version")
    async def stop_version(self, request: SlotRequest) -> bool:
        self.calls.append(("stop_version", request.slot.value))
        return True

    @activity.defn(name="promote_version")
    async def promote_version(self, request: PromoteRequest) -> str | None:
        self.calls.append(("promote_version", request.keep))
        self.promoted = True
        return self.stable

    @activity.defn(name="revert_version")
    async def revert_version(self, request: VersionRequest) -> bool:
        self.calls.append(("revert_version", request.version))
        self.promoted = False
        return True

    @activity.defn(name="read_rollback_window")
    async def read_rollback_window(self, ref: ServiceRef) -> RollbackWindow:
        return self.window

    @activity.defn(name="version_health")
    async def version_health(self, request: VersionRequest) -> VersionHealth:
        self.calls.append(("version_health", request.version))
        healthy = request.version not in self.unhealthy
        return VersionHealth(version=request.version, healthy=healthy, detail="ready" if healthy else "/health/ready answered 503")

    @activity.defn(name="retire_version")
    async def retire_version(self, request: VersionRequest) -> bool:
        self.calls.append(("retire_version", request.version))
        return True

    @activity.defn(name="migrate")
    async def migrate(self, request: MigrationRequest) -> MigrationResult:
        self.calls.append(("migrate", (request.database, request.direction, request.revision)))
        if request.revision in self.failing_revisions:
            raise ApplicationError(f"{request.revision}: column contains null values", type="MigrationFailed", non_retryable=True)
        before = self.revisions[request.database]
        self.revisions[request.database] = request.revision
        return MigrationResult(database=request.database, before=before, after=request.revision,
                               changed=before != request.revision, seconds=0.1)

    @activity.defn(name="check_expand")
    async def check_expand(self, request: MigrationRequest) -> list[str]:
        return list(self.expand_problems)

    @activity.defn(name="check_consistency")
    async def check_consistency(self, request: ConsistencyRequest) -> ConsistencyReport:
        checks = {"photos_without_shoot": 0, "missing_files": 0, **self.violations()}
        self.calls.append(("check_consistency", request.database))
        return ConsistencyReport(
            database=request.database,
            checks=[CheckOutcome(name=name, violations=count, detail="fake") for name, count in checks.items()],
        )

    @activity.defn(name="observe_metrics")
    async def observe_metrics(self, request: ObserveRequest) -> Observation:
        if self.metrics_down:
            raise ApplicationError("connection refused", type="MetricsUnavailable", non_retryable=True)
        if self.metrics_hang:
            await asyncio.Event().wait()
        stable = self.promoted_health if self.promoted else self.stable_health
        return Observation(window_seconds=60, canary=self.canary_health(self.weight), stable=stable, cursor={"n": 1})
