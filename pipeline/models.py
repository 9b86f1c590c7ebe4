"""Shared pydantic models: the release pipeline's public contract and the messages
between the workflow and its activities.

Everything that crosses a Temporal boundary (workflow input and result, signals,
queries, activity arguments and results) is defined here, once, so that the
workflow, the activities, the CLI and the tests speak the same language.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Base for every contract model: unknown fields are errors, so a typo in a
    release request is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Stage(StrEnum):
    CANARY = "canary"
    PRODUCTION = "production"


class Phase(StrEnum):
    VALIDATE = "validate"
    WAITING_FOR_LOCK = "waiting_for_lock"
    STAGING = "staging"
    CANARY_APPROVAL = "canary_approval"
    CANARY = "canary"
    PRODUCTION_APPROVAL = "production_approval"
    PROGRESSIVE_SHIFT = "progressive_shift"
    FINALIZE = "finalize"
    ROLLBACK = "rollback"
    DONE = "done"


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    FAILED = "failed"


class Slot(StrEnum):
    """Where a version runs on a target."""

    STAGING = "staging"
    CANARY = "canary"
    STABLE = "stable"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Metric(StrEnum):
    """Metrics every metrics provider computes for a version over a window."""

    ERROR_RATE = "error_rate"
    P95_LATENCY_MS = "p95_latency_ms"


class Concurrency(StrEnum):
    """What a release does when another release of the same service is running."""

    REFUSE = "refuse"
    QUEUE = "queue"


TargetName = Literal["local", "kubernetes"]

SERVICE_PATTERN = r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
SECRET_NAME_HINT = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL)")
SECRET_REFERENCE_PREFIX = "secret://"


class Bound(Strict):
    """A threshold on one metric: the check fails when the value is above `max`
    or below `min`."""

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of 'max' or 'min'")
        return self

    def breached_by(self, value: float) -> bool:
        if self.max is not None:
            return value > self.max
        return value < self.min  # type: ignore[operator]

    def describe(self) -> str:
        return f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"


ADR_THRESHOLDS: dict[Metric, Bound] = {
    Metric.ERROR_RATE: Bound(max=0.01),
    Metric.P95_LATENCY_MS: Bound(max=500),
}

ADR_TEST_SUITES = ["unit", "integration", "e2e", "performance", "security"]


class ReleasePolicy(Strict):
    """Every timing and threshold of a release; defaults come from ADR-017."""

    canary_weight: int = Field(10, ge=1, le=100, description="percent of traffic on the canary")
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [25, 50, 75, 100])
    step_interval_seconds: int = Field(300, ge=1, le=86_400)
    canary_duration_seconds: int = Field(1800, ge=1, le=7 * 86_400)
    analysis_interval_seconds: int = Field(60, ge=1, le=3600)
    required_approvals: list[Stage] = Field(default_factory=lambda: [Stage.CANARY, Stage.PRODUCTION])
    thresholds: dict[Metric, Bound] = Field(default_factory=lambda: dict(ADR_THRESHOLDS))
    min_requests: int = Field(
        10, ge=1, description="canary requests a window needs before its metrics count"
    )
    max_inconclusive_checks: int = Field(
        3, ge=1, description="consecutive checks without enough data before the release rolls back"
    )
    test_suites: list[str] = Field(default_factory=lambda: list(ADR_TEST_SUITES))
    segment_header: str = Field("X-User-Type", pattern=r"^[A-Za-z0-9-]+$")
    canary_segments: list[str] = Field(
        default_factory=lambda: ["beta-photographer", "internal-team"],
        description="values of segment_header whose requests all go to the canary",
    )
    retire_delay_seconds: int = Field(300, ge=0, le=86_400)
    concurrency: Concurrency = Concurrency.REFUSE

    @field_validator("thresholds", mode="before")
    @classmethod
    def _merge_with_defaults(cls, value: Any) -> Any:
        """Overriding one metric's threshold keeps the ADR defaults for the others."""
        if isinstance(value, dict):
            return {**{k.value: v.model_dump(exclude_none=True) for k, v in ADR_THRESHOLDS.items()}, **value}
        return value

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_full_traffic(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("needs at least one step")
        if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
            raise ValueError("must strictly increase")
        if steps[-1] != 100:
            raise ValueError("must end at 100")
        return steps

    @field_validator("required_approvals")
    @classmethod
    def _unique_stages(cls, stages: list[Stage]) -> list[Stage]:
        if len(set(stages)) != len(stages):
            raise ValueError("lists a stage twice")
        return stages

    @field_validator("test_suites", "canary_segments")
    @classmethod
    def _unique_names(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("lists a name twice")
        return names

    @model_validator(mode="after")
    def _intervals_fit(self) -> ReleasePolicy:
        if self.analysis_interval_seconds > self.canary_duration_seconds:
            raise ValueError("analysis_interval_seconds must not exceed canary_duration_seconds")
        if self.analysis_interval_seconds > self.step_interval_seconds:
            raise ValueError("analysis_interval_seconds must not exceed step_interval_seconds")
        if self.steps[0] < self.canary_weight:
            raise ValueError("steps must start at or above canary_weight")
        return self


class ReleaseRequest(Strict):
    """The workflow input CI sends: `temporal workflow start --input '<this as JSON>'`."""

    service: str = Field(pattern=SERVICE_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    target: TargetName = "local"
    env: dict[str, str] = Field(default_factory=dict, description="environment of the new version")
    policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    author: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)

    @field_validator("env")
    @classmethod
    def _env_is_plain_configuration(cls, env: dict[str, str]) -> dict[str, str]:
        """The request is stored in workflow history, so it may name secrets but never hold them."""
        for name, value in env.items():
            if not re.match(ENV_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if SECRET_NAME_HINT.search(name) and not value.startswith(SECRET_REFERENCE_PREFIX):
                raise ValueError(
                    f"{name} looks like a secret; workflow history is not a secret store, "
                    f"pass a reference such as '{SECRET_REFERENCE_PREFIX}{name}' instead"
                )
        return env


# --- signals -------------------------------------------------------------------------------


class ApprovalDecision(Strict):
    """Payload of the `approve` and `reject` signals."""

    stage: Stage
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)


class KillSwitch(Strict):
    """Payload of the `kill_switch` signal: roll back now."""

    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(min_length=1, max_length=200)


class Operator(Strict):
    """Optional payload of `pause` and `resume`."""

    actor: str = Field("unknown", max_length=200)
    reason: str = Field("", max_length=2000)


# --- analysis ------------------------------------------------------------------------------


class VersionMetrics(Strict):
    """What a metrics provider measured for one version over one window.
    A metric is None when the window had no data for it."""

    requests: int = 0
    values: dict[Metric, float | None] = Field(default_factory=dict)


class Observation(Strict):
    """Result of one `observe` activity: the canary's and stable's metrics over the
    window since `cursor` was taken, and the cursor that opens the next window."""

    window_seconds: float
    canary: VersionMetrics
    stable: VersionMetrics
    cursor: dict[str, Any] = Field(default_factory=dict)


class MetricCheck(Strict):
    metric: Metric
    value: float | None
    threshold: str
    passed: bool | None  # None: no data


class Analysis(Strict):
    at: str
    phase: Phase
    canary_weight: int
    verdict: Verdict
    canary_requests: int
    checks: list[MetricCheck]
    stable_values: dict[Metric, float | None] = Field(default_factory=dict)
    summary: str


# --- status and result ---------------------------------------------------------------------


class Approval(Strict):
    stage: Stage
    approver: str
    comment: str = ""
    at: str


class TimelineEntry(Strict):
    at: str
    phase: Phase
    message: str


class ReleaseStatus(Strict):
    """Answer of the `status` query."""

    release_id: str
    service: str | None = None
    version: str | None = None
    target: str | None = None
    phase: Phase
    canary_weight: int = 0
    pending_approval: Stage | None = None
    paused: bool = False
    outcome: Outcome | None = None
    reason: str | None = None
    stable_version: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    last_analysis: Analysis | None = None
    ignored_signals: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)


class ReleaseResult(Strict):
    release_id: str
    service: str | None
    version: str | None
    outcome: Outcome
    reason: str
    breach: MetricCheck | None = None
    canary_weight: int = 0
    stable_version: str | None = None
    approvals: list[Approval] = Field(default_factory=list)


# --- activity inputs and outputs -----------------------------------------------------------


class ServiceRef(Strict):
    """Which service on which target an activity acts on. Carries the release id so
    that activity logs can be correlated with the release."""

    release_id: str
    service: str
    target: TargetName = "local"
    phase: Phase = Phase.VALIDATE


class PreflightRequest(Strict):
    ref: ServiceRef
    suites: list[str]


class PreflightReport(Strict):
    stable_version: str | None
    missing_suites: list[str] = Field(default_factory=list)


class DeployRequest(Strict):
    ref: ServiceRef
    slot: Slot
    version: str
    env: dict[str, str] = Field(default_factory=dict)


class SuiteRequest(Strict):
    ref: ServiceRef
    suite: str
    version: str


class SuiteResult(Strict):
    suite: str
    passed: bool
    duration_seconds: float
    detail: str


class TrafficRequest(Strict):
    """Desired routing: `canary_weight` percent of ordinary traffic to the canary, and
    all requests of the listed segments when `segments_to_canary` is set."""

    ref: ServiceRef
    canary_weight: int = Field(ge=0, le=100)
    segments_to_canary: bool
    segment_header: str = "X-User-Type"
    canary_segments: list[str] = Field(default_factory=list)


class SlotRequest(Strict):
    ref: ServiceRef
    slot: Slot


class RetireRequest(Strict):
    ref: ServiceRef
    version: str


class ObserveRequest(Strict):
    ref: ServiceRef
    cursor: dict[str, Any] = Field(default_factory=dict)
