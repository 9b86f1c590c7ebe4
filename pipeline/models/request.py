"""The release request CI sends and its policy: every timing, threshold and gate a
release may ask for, with ADR-017's defaults."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.catalog import metrics_provider_problem
from pipeline.decisions.service_env import env_problems
from pipeline.models.adapters import MetricsProviderName, TargetName
from pipeline.models.base import (
    MAX_CANARY_WEIGHT,
    MAX_LIST_ITEMS,
    MAX_QUERY_LENGTH,
    SEGMENT_PATTERN,
    SERVICE_PATTERN,
    SUITE_PATTERN,
    VERSION_PATTERN,
    Concurrency,
    Direction,
    Input,
    Metric,
    OnInconclusive,
    OutsideWindow,
    Severity,
    Stage,
)

QueryName = Metric | Literal["requests"]
"""A PromQL template's name: a metric, or `requests` (the count `min_requests` checks)."""


class Bound(Input):
    """A rule on one metric: the check fails when the value is above `max` or below
    `min`. The other fields are optional, so `{"max": 0.01}` stays a complete rule."""

    max: float | None = None
    min: float | None = None
    severity: Severity = Severity.FAST
    failure_budget: int = Field(0, ge=0, description="failed checks tolerated over the release")
    consecutive_passes: int = Field(1, ge=1, description="passing checks in a row before traffic may advance")
    required: bool = Field(True, description="without data the check is inconclusive; if False it is only recorded")

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of 'max' or 'min'")
        return self

    def breached_by(self, value: float) -> bool:
        """A value that cannot be compared (NaN) breaches: unknown is never a pass."""
        if math.isnan(value):
            return True
        if self.max is not None:
            return not value <= self.max
        return not value >= self.min  # type: ignore[operator]

    def describe(self) -> str:
        return f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"


ADR_THRESHOLDS: dict[Metric, Bound] = {
    Metric.ERROR_RATE: Bound(max=0.01),
    Metric.P95_LATENCY_MS: Bound(max=500),
}

DEFAULT_BAKE_SECONDS = 600
"""Ten analyses at the default interval: long enough for a `standard` breach (three
failed checks in a row) to show twice, and for slow leaks (memory, connection pools,
caches that fill) that a five-minute step hides; short enough that the previous version
is not kept warm, at full size, for long. CodeDeploy and ECS leave it to the user."""

ADR_TEST_SUITES = ["unit", "integration", "e2e", "performance", "security"]
BUSINESS_METRICS = [
    Metric.SHOOT_COMPLETION_RATE,
    Metric.GALLERY_LOAD_TIME_MS,
    Metric.PROCESSING_TIME_MS,
    Metric.REVENUE_PROXY,
]


class Comparison(Input):
    """Canary against stable for one metric, over the same window. Rates of counted
    events (errors, failed uploads) are compared as proportions of requests with
    Fisher's exact test; other metrics with a one-sided (or two-sided, for `either`)
    Mann-Whitney U test on the provider's raw samples. `test` overrides the choice."""

    test: Literal["auto", "proportions", "mann_whitney"] = "auto"
    direction: Direction = Direction.INCREASE
    allowed_effect: float = Field(
        0.0, ge=0, description="tolerated relative change of the canary's mean over stable's (0.1 = 10%)"
    )
    weight: float = Field(1.0, gt=0)
    critical: bool = Field(False, description="a failure fails the whole comparison, whatever the score")

    def uses_proportions(self, metric: Metric) -> bool:
        """A rule's named test wins; "auto" compares the rates in COUNTED_RATES as proportions."""
        return self.test == "proportions" or (self.test == "auto" and metric in COUNTED_RATES)


COUNTED_RATES = frozenset({Metric.ERROR_RATE, Metric.UPLOAD_FAILURE_RATE, Metric.FILE_CORRUPTION_RATE})
"""Metrics that are a share of counted bad events, compared as proportions unless a
rule names its test: a `Comparison.test` of "auto" picks Fisher's exact for these and
Mann-Whitney for every other metric."""


class BaselinePolicy(Input):
    """Kayenta-style scoring of the per-metric comparisons (defaults as Kayenta's)."""

    metrics: dict[Metric, Comparison] = Field(default_factory=dict)
    confidence: float = Field(0.98, gt=0.5, lt=1)
    min_samples: int = Field(5, ge=3, description="finite samples each side needs, else inconclusive")
    pass_score: float = Field(95, ge=0, le=100)
    marginal_score: float = Field(75, ge=0, le=100)
    severity: Severity = Severity.FAST
    sample_seconds: int = Field(5, ge=1, le=3600, description="resolution of the samples a provider returns")

    def sampled_metrics(self) -> list[Metric]:
        """The metrics compared with a rank test, which needs the provider's raw samples."""
        return [metric for metric, rule in self.metrics.items() if not rule.uses_proportions(metric)]

    @model_validator(mode="after")
    def _scores_ordered(self) -> BaselinePolicy:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not exceed pass_score")
        return self


class ReleasePolicy(Input):
    """Every timing and threshold of a release; defaults come from ADR-017."""

    canary_weight: int = Field(10, ge=1, le=MAX_CANARY_WEIGHT, description="percent of traffic on the canary")
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [25, 50, 75, 100], max_length=MAX_LIST_ITEMS
    )
    step_interval_seconds: int = Field(300, ge=1, le=86_400)
    canary_duration_seconds: int = Field(1800, ge=1, le=7 * 86_400)
    analysis_interval_seconds: int = Field(60, ge=1, le=3600)
    required_approvals: list[Stage] = Field(default_factory=lambda: [Stage.CANARY, Stage.PRODUCTION], max_length=2)
    thresholds: dict[Metric, Bound] = Field(default_factory=lambda: dict(ADR_THRESHOLDS))
    min_requests: int = Field(
        10, ge=1, description="canary requests a window needs before its metrics count"
    )
    max_inconclusive_checks: int = Field(
        3, ge=1, description="consecutive checks without enough data before `on_inconclusive` applies"
    )
    on_inconclusive: OnInconclusive = OnInconclusive.ROLLBACK
    standard_persist_checks: int = Field(
        3, ge=1, description="failed checks in a row after which a `standard` rule rolls back"
    )
    baseline: BaselinePolicy | None = None
    recorded_metrics: list[Metric] = Field(
        default_factory=lambda: list(BUSINESS_METRICS),
        max_length=len(Metric),
        description="read at each analysis and shown in status; gating only when a threshold names them",
    )
    metrics_provider: MetricsProviderName | None = Field(
        None, description="where metrics are read; None: the target's default"
    )
    queries: dict[QueryName, Annotated[str, Field(min_length=1, max_length=MAX_QUERY_LENGTH)]] = Field(
        default_factory=dict,
        description="PromQL templates overriding the defaults; placeholders {service} {track} {version} {namespace} {window}",
    )
    namespace: str = Field("default", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    test_suites: list[Annotated[str, Field(pattern=SUITE_PATTERN)]] = Field(
        default_factory=lambda: list(ADR_TEST_SUITES), max_length=MAX_LIST_ITEMS
    )
    segment_header: str = Field("X-User-Type", pattern=r"^[A-Za-z0-9-]{1,64}$")
    canary_segments: list[Annotated[str, Field(pattern=SEGMENT_PATTERN)]] = Field(
        default_factory=lambda: ["beta-photographer", "internal-team"],
        max_length=MAX_LIST_ITEMS,
        description="values of segment_header whose requests all go to the canary",
    )
    retire_delay_seconds: int = Field(
        300, ge=0, le=86_400, description="with bake_seconds 0: how long the previous version stays warm, unwatched"
    )
    bake_seconds: int = Field(
        DEFAULT_BAKE_SECONDS,
        ge=0,
        le=7 * 86_400,
        description="after 100%: how long the new version is watched with the previous one warm (0: no bake)",
    )
    rollback_window: int = Field(
        2, ge=1, le=10, description="promoted versions before this one that a revert may return to"
    )
    migration_rollback: Literal["downgrade", "keep"] = Field(
        "downgrade",
        description="after a rollback before contract: reverse the expand, or keep it (safe for the old version by design)",
    )
    contract_wait_seconds: int = Field(
        3600, ge=0, le=7 * 86_400, description="how long contract waits for its precondition before the release fails"
    )
    concurrency: Concurrency = Concurrency.REFUSE
    approval_timeout_seconds: int = Field(
        86_400, ge=1, le=30 * 86_400, description="how long an approval may take before the release expires"
    )
    outside_window: OutsideWindow = OutsideWindow.WAIT
    max_canary_hold_seconds: int = Field(
        86_400,
        ge=60,
        le=7 * 86_400,
        description="longest calendar wait while a canary takes traffic; a later window rolls back instead",
    )
    live_activity_wait_seconds: int = Field(
        1800, ge=0, le=7 * 86_400, description="how long a production change waits for live activity to clear"
    )
    live_activity_recheck_seconds: int = Field(30, ge=1, le=3600)

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
        if self.steps[0] <= self.canary_weight:
            raise ValueError("steps must start above canary_weight: a step is a production change")
        return self


REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

class MigrationPlan(Input):
    """An expand/contract migration carried by a release: `expand` is applied before the
    canary (and must keep the running stable version working), `backfill` and then
    `contract` only once nothing can roll back to the previous version any more
    (contract is the point of no return)."""

    expand: str = Field(pattern=REVISION_PATTERN)
    backfill: str | None = Field(None, pattern=REVISION_PATTERN)
    """A data-only revision between expand and contract (fills what contract will
    require), applied once the previous version is retired, so nothing writes the old
    shape after it."""
    contract: str | None = Field(None, pattern=REVISION_PATTERN)


class RevertOrder(Input):
    """Who asks for a revert and why: recorded in the release's status and timeline."""

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class ReleaseRequest(Input):
    """The workflow input CI sends: `temporal workflow start --input '<this as JSON>'`.

    With `revert`, it is a revert instead: back to `version` (or, without one, to the
    newest version in the rollback window), skipping staging, canary and approvals."""

    service: str = Field(pattern=SERVICE_PATTERN)
    version: str | None = Field(None, pattern=VERSION_PATTERN)
    revert: RevertOrder | None = None
    migration: MigrationPlan | None = None
    target: TargetName = "local"
    env: dict[str, str] = Field(default_factory=dict, description="environment of the new version")
    policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    author: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    keep_previous: bool = False
    """After the bake, keep the previous version warm instead of retiring it: a release
    train sets it on its members and retires (or reverts to) the previous versions when
    the train ends."""
    flags: list[dict[str, Any]] = Field(default_factory=list, max_length=10)
    """Feature flags the release ships dark: each a FeatureRolloutRequest (pipeline/models/flags.py)
    whose `service` and `target` default to the release's, rolled out as a child workflow
    after promotion and turned off first by a rollback (workflows/release/flags.py)."""
    commit_time: str | None = Field(None, max_length=64)
    """When the change was committed (ISO 8601 with a time zone): `releasectl dora`
    measures lead time from it to promotion. Only read after the release, never by it."""

    @field_validator("commit_time")
    @classmethod
    def _commit_time_is_iso(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"commit_time: {value!r} is not an ISO 8601 timestamp") from None
            if moment.tzinfo is None:
                raise ValueError(f"commit_time: {value!r} has no time zone (e.g. 2026-11-28T09:30:00+00:00)")
        return value

    @model_validator(mode="after")
    def _version_given(self) -> ReleaseRequest:
        if self.version is None and self.revert is None:
            raise ValueError("version: a release needs the version to release")
        return self

    @model_validator(mode="after")
    def _contract_needs_the_previous_version_retired(self) -> ReleaseRequest:
        if self.keep_previous and self.migration is not None and self.migration.contract is not None:
            raise ValueError(
                "migration.contract: contract needs the previous version retired, which a release that keeps it "
                "warm (a train member) does not do; release the contract on its own once the train is done"
            )
        return self

    @model_validator(mode="after")
    def _metrics_provider_fits(self) -> ReleaseRequest:
        """Caught here, a provider that cannot serve the release fails it before staging,
        not at its first analysis (or, for a baseline, as endless inconclusive checks)."""
        problem = metrics_provider_problem(
            self.target,
            self.policy.metrics_provider,
            needs_samples=self.policy.baseline is not None and bool(self.policy.baseline.sampled_metrics()),
        )
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _flags_are_rollouts(self) -> ReleaseRequest:
        from pipeline.decisions.flags import InvalidRequest, shipped_rollouts  # the flag models import this module

        try:
            shipped_rollouts(self.flags, self.service, self.target)
        except InvalidRequest as invalid:
            raise ValueError("; ".join(invalid.problems)) from None
        return self

    @field_validator("env")
    @classmethod
    def _env_is_plain_configuration(cls, env: dict[str, str]) -> dict[str, str]:
        """The request is stored in workflow history and becomes a process's environment:
        plain application configuration only, bounded, secrets by reference (the rules:
        pipeline/decisions/service_env.py)."""
        problems = env_problems(env)
        if problems:
            raise ValueError("; ".join(problems))
        return env
