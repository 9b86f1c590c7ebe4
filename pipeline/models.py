"""Shared pydantic models: the release pipeline's public contract and the messages
between the workflow and its activities.

Everything that crosses a Temporal boundary (workflow input and result, signals,
queries, activity arguments and results) is defined here, once, so that the
workflow, the activities, the CLI and the tests speak the same language.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.decisions.service_env import ENV_NAME_PATTERN, SECRET_NAME_HINT, SECRET_REFERENCE_PREFIX, env_problems


class Strict(BaseModel):
    """Base for every contract model: unknown fields are errors, so a typo in a
    release request is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Input(Strict):
    """Base for what people and scripts send (the release request and its policy,
    signals, updates): NaN and infinity are refused, since a comparison with NaN is
    never true and a threshold of NaN would pass every canary."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    EXPIRED = "expired"
    """An approval did not arrive before its deadline."""
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
    MARGINAL = "marginal"
    """Baseline score between the marginal and pass thresholds: hold, neither advance nor roll back."""


class Metric(StrEnum):
    """Metrics a provider may compute for a version over a window. Every provider
    computes the first two; the others exist where the provider has a query for them
    and otherwise report no data."""

    ERROR_RATE = "error_rate"
    P95_LATENCY_MS = "p95_latency_ms"
    UPLOAD_FAILURE_RATE = "upload_failure_rate"
    GALLERY_AVAILABILITY = "gallery_availability"
    IMAGE_PROCESSING_P95_MS = "image_processing_p95_ms"
    THUMBNAIL_SUCCESS_RATE = "thumbnail_success_rate"
    FILE_CORRUPTION_RATE = "file_corruption_rate"
    # business metrics: recorded at each analysis, gating only when a rule names them
    SHOOT_COMPLETION_RATE = "shoot_completion_rate"
    GALLERY_LOAD_TIME_MS = "gallery_load_time_ms"
    PROCESSING_TIME_MS = "processing_time_ms"
    REVENUE_PROXY = "revenue_proxy"


class Severity(StrEnum):
    """How a breached rule acts (ADR-017): `immediate` sends all traffic to stable at
    the first breach whatever the budget; `fast` rolls back once the rule's failure
    budget is spent; `standard` holds the step and rolls back only if the breach
    persists over `ReleasePolicy.standard_persist_checks` checks in a row (or the
    budget is spent)."""

    IMMEDIATE = "immediate"
    FAST = "fast"
    STANDARD = "standard"


class Direction(StrEnum):
    """Which change of a metric, canary against stable, is bad."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class OnInconclusive(StrEnum):
    """What a release does after too many inconclusive checks in a row."""

    ROLLBACK = "rollback"
    PAUSE = "pause"


MetricsProviderName = Literal["traefik", "prometheus"]
DEFAULT_METRICS_PROVIDER: dict[str, MetricsProviderName] = {"local": "traefik", "kubernetes": "prometheus"}
"""The provider a release reads when its policy names none, per target."""
PROVIDER_TARGETS: dict[MetricsProviderName, set[str]] = {"traefik": {"local"}, "prometheus": {"local", "kubernetes"}}
SAMPLING_PROVIDERS = {"prometheus"}
"""Providers that return raw samples, which the baseline comparison tests."""
QueryName = Metric | Literal["requests"]
"""A PromQL template's name: a metric, or `requests` (the count `min_requests` checks)."""


class Concurrency(StrEnum):
    """What a release does when another release of the same service is running."""

    REFUSE = "refuse"
    QUEUE = "queue"


class OutsideWindow(StrEnum):
    """What a production change does outside the deployment calendar's windows."""

    WAIT = "wait"
    FAIL = "fail"


TargetName = Literal["local", "kubernetes"]

SERVICE_PATTERN = r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
SEGMENT_PATTERN = r"^[A-Za-z0-9._ -]{1,64}$"
"""A user-segment value: what every router can match literally (Traefik's regexp, Istio's exact match)."""
SUITE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_CANARY_WEIGHT = 50
"""A canary is a small share: anything larger is a production change, which needs
the production approval and its gates (the steps), never the canary approval alone."""
MAX_LIST_ITEMS = 20
MAX_QUERY_LENGTH = 4096


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

ADR_TEST_SUITES = ["unit", "integration", "e2e", "performance", "security"]

BUSINESS_METRICS = [
    Metric.SHOOT_COMPLETION_RATE,
    Metric.GALLERY_LOAD_TIME_MS,
    Metric.PROCESSING_TIME_MS,
    Metric.REVENUE_PROXY,
]


class Comparison(Input):
    """Canary against stable for one metric, over the same window, with a one-sided
    (or two-sided, for `either`) Mann-Whitney U test on the provider's raw samples."""

    direction: Direction = Direction.INCREASE
    allowed_effect: float = Field(
        0.0, ge=0, description="tolerated relative change of the canary's mean over stable's (0.1 = 10%)"
    )
    weight: float = Field(1.0, gt=0)
    critical: bool = Field(False, description="a failure fails the whole comparison, whatever the score")


class BaselinePolicy(Input):
    """Kayenta-style scoring of the per-metric comparisons (defaults as Kayenta's)."""

    metrics: dict[Metric, Comparison] = Field(default_factory=dict)
    confidence: float = Field(0.98, gt=0.5, lt=1)
    min_samples: int = Field(5, ge=3, description="finite samples each side needs, else inconclusive")
    pass_score: float = Field(95, ge=0, le=100)
    marginal_score: float = Field(75, ge=0, le=100)
    severity: Severity = Severity.FAST
    sample_seconds: int = Field(5, ge=1, le=3600, description="resolution of the samples a provider returns")

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
    retire_delay_seconds: int = Field(300, ge=0, le=86_400)
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


class ReleaseRequest(Input):
    """The workflow input CI sends: `temporal workflow start --input '<this as JSON>'`."""

    service: str = Field(pattern=SERVICE_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    target: TargetName = "local"
    env: dict[str, str] = Field(default_factory=dict, description="environment of the new version")
    policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    author: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _metrics_provider_fits(self) -> ReleaseRequest:
        """Caught here, a provider that cannot serve the release fails it before staging,
        not at its first analysis (or, for a baseline, as endless inconclusive checks)."""
        provider = self.policy.metrics_provider or DEFAULT_METRICS_PROVIDER[self.target]
        if self.target not in PROVIDER_TARGETS[provider]:
            raise ValueError(f"policy.metrics_provider {provider!r} cannot read the {self.target} target")
        if self.policy.baseline is not None and provider not in SAMPLING_PROVIDERS:
            raise ValueError(
                f"policy.baseline needs raw samples, which the {provider} provider does not give; "
                'set policy.metrics_provider to "prometheus"'
            )
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


# --- signals -------------------------------------------------------------------------------


class ApprovalDecision(Input):
    """Payload of the `approve` and `reject` signals."""

    stage: Stage
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)


class BreakGlass(Input):
    """Payload of the `break_glass` signal and `submit_break_glass` update: an
    urgent fix may change production outside the deployment calendar."""

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class ApprovalReceipt(Strict):
    """Answer of the `submit_approval` update."""

    stage: Stage
    counted: bool
    approvals: int
    required: int
    message: str


class KillSwitch(Input):
    """Payload of the `kill_switch` signal and `submit_kill_switch` update: roll back
    now. The workflow honours a kill switch whatever its payload says; this model is
    what a well-formed one looks like (releasectl sends it)."""

    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(min_length=1, max_length=200)


class KillReceipt(Strict):
    """Answer of the `submit_kill_switch` update, once no traffic reaches the new version."""

    outcome: Outcome | None
    """None while the rollback goes on stopping the canary; traffic is already on stable."""
    seconds: float
    """Workflow time from the order to all traffic on stable."""
    message: str


class Operator(Input):
    """Optional payload of `pause` and `resume`."""

    actor: str = Field("unknown", max_length=200)
    reason: str = Field("", max_length=2000)


# --- analysis ------------------------------------------------------------------------------


class VersionMetrics(Strict):
    """What a metrics provider measured for one version over one window.
    A metric is None when the window had no data for it; `missing` says why
    (no samples, NaN, Inf). `samples` are the raw series the baseline comparison
    tests, for the metrics it compares."""

    requests: int = 0
    values: dict[Metric, float | None] = Field(default_factory=dict)
    missing: dict[Metric, str] = Field(default_factory=dict)
    samples: dict[Metric, list[float]] = Field(default_factory=dict)


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
    passed: bool | None  # None: inconclusive
    severity: Severity = Severity.FAST
    reason: str = ""


class ComparisonResult(Strict):
    """One metric of the baseline comparison."""

    metric: Metric
    verdict: Verdict
    canary_mean: float | None = None
    stable_mean: float | None = None
    p_value: float | None = None
    effect: float | None = None
    weight: float = 1.0
    critical: bool = False
    reason: str


class BaselineScore(Strict):
    verdict: Verdict
    score: float | None
    """0-100: the weight share of conclusive metrics that passed; None when none was conclusive."""
    marginal: bool = False
    metrics: list[ComparisonResult]
    summary: str


class Analysis(Strict):
    at: str
    phase: Phase
    canary_weight: int
    verdict: Verdict
    canary_requests: int
    checks: list[MetricCheck]
    stable_values: dict[Metric, float | None] = Field(default_factory=dict)
    canary_values: dict[Metric, float | None] = Field(default_factory=dict)
    baseline: BaselineScore | None = None
    score: float | None = None
    decision: str = ""
    summary: str


class RuleRecord(Strict):
    """What analysis remembers of one rule between checks."""

    failures: int = 0
    failing_streak: int = 0
    passing_streak: int = 0


class AnalysisMemory(Strict):
    """State the workflow carries from one analysis to the next."""

    rules: dict[str, RuleRecord] = Field(default_factory=dict)
    inconclusive_streak: int = 0


# --- gates: the worker's release governance ---------------------------------------------


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MONTH_DAY_PATTERN = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Window(Strict):
    """A weekly deployment window, in the calendar's time zone: `start` on each of
    `days`, open for `duration_minutes` (which may run past midnight)."""

    days: list[Weekday] = Field(min_length=1)
    start: str = Field(pattern=CLOCK_PATTERN)
    duration_minutes: int = Field(ge=1, le=7 * 1440)


class Freeze(Strict):
    """A blocked period. Every constraint given must hold for a moment to be frozen:
    `months` and `weekdays` (wedding-season weekends), a yearly `from_day`..`to_day`
    range such as 12-20..01-05 (holidays; it may wrap the new year, both days
    included), or an absolute `start`..`end` (an ad-hoc freeze; naive times are in
    the calendar's time zone)."""

    reason: str = Field(min_length=1, max_length=500)
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(default_factory=list)
    weekdays: list[Weekday] = Field(default_factory=list)
    from_day: str | None = Field(None, pattern=MONTH_DAY_PATTERN)
    to_day: str | None = Field(None, pattern=MONTH_DAY_PATTERN)
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _well_formed(self) -> Freeze:
        if (self.from_day is None) != (self.to_day is None):
            raise ValueError("give both 'from_day' and 'to_day', or neither")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both 'start' and 'end', or neither")
        if self.start is not None and self.end is not None and (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("'start' and 'end' must both have a time zone offset, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        if not (self.months or self.weekdays or self.from_day or self.start):
            raise ValueError("give at least one of 'months', 'weekdays', 'from_day'/'to_day' or 'start'/'end'")
        return self


class BusinessCalendar(Strict):
    """When production may change. No windows: any time that is not frozen."""

    timezone: str = "UTC"
    windows: list[Window] = Field(default_factory=list)
    freezes: list[Freeze] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name


class CalendarVerdict(Strict):
    open: bool
    reason: str
    opens_at: datetime | None = None
    """When closed: the next moment production may change; None if none within a year."""


class Approvers(Strict):
    """People allowed to do something: named users, and members of named groups."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class ApprovalRule(Approvers):
    """Who may approve a stage, and how many distinct people must. A stage with a
    rule always needs approval, whatever the release request says."""

    min_approvals: int = Field(1, ge=1, le=10)
    forbid_author: bool = Field(False, description="the release's author may not approve it")


class LiveActivityCheck(Strict):
    """The platform endpoint that reports live activity (GET, JSON object of counts).
    `{stable}` in the URL is the stable version's base URL on the release's target."""

    url: str = Field(min_length=1)
    targets: list[TargetName] = Field(default_factory=list, description="the targets it applies to; empty: all")
    counters: list[str] = Field(default_factory=lambda: ["active_uploads", "processing_jobs", "client_sessions"], min_length=1)
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class NotificationEvent(StrEnum):
    APPROVAL_NEEDED = "approval_needed"
    PHASE = "phase"
    HELD = "held"
    ROLLBACK = "rollback"
    FINISHED = "finished"


class Webhook(Strict):
    """A notification receiver. Its URL (Slack's carries a token) is read from the
    worker's environment variable `url_env`, so it never enters history or logs."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    format: Literal["slack", "json"] = "json"
    url_env: str = Field(pattern=ENV_NAME_PATTERN)
    events: list[NotificationEvent] = Field(default_factory=lambda: list(NotificationEvent))
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class ServiceGates(Strict):
    """One service's gates. In the gates file, `defaults` holds them for every
    service and `services.<name>` overrides them field by field."""

    approvals: dict[Stage, ApprovalRule] = Field(default_factory=dict)
    break_glass: Approvers = Field(default_factory=Approvers)
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    live_activity: LiveActivityCheck | None = None
    webhooks: list[Webhook] = Field(default_factory=list)


class GatesConfig(Strict):
    """The worker's release governance (PIPELINE_GATES_FILE): it belongs to whoever
    runs the worker, so a release request can add approvals but never remove them."""

    groups: dict[str, list[str]] = Field(default_factory=dict)
    defaults: ServiceGates = Field(default_factory=ServiceGates)
    services: dict[str, ServiceGates] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _groups_exist(self) -> GatesConfig:
        for where, gates in [("defaults", self.defaults), *((f"services.{name}", g) for name, g in self.services.items())]:
            named = [*gates.break_glass.groups, *(group for rule in gates.approvals.values() for group in rule.groups)]
            unknown = sorted(set(named) - set(self.groups))
            if unknown:
                raise ValueError(f"{where} names unknown groups: {', '.join(unknown)}")
        return self

    def for_service(self, service: str) -> ServiceGates:
        """The defaults, with the fields the service's entry sets replaced."""
        override = self.services.get(service)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


class StageGate(Strict):
    """A stage's approval rule as a release sees it, groups expanded to people."""

    anyone: bool
    """No rule configured: anyone may approve."""
    approvers: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    min_approvals: int = 1
    forbid_author: bool = False


class ReleaseGates(Strict):
    """What the workflow keeps of the gates, read once when a release starts: who may
    approve and break glass, and the webhooks' names. Recorded in history, so the
    approvers a release was held to are part of its audit trail; never a URL."""

    approvals: dict[Stage, StageGate] = Field(default_factory=dict)
    break_glass: list[str] = Field(default_factory=list)
    webhooks: dict[str, list[NotificationEvent]] = Field(default_factory=dict)
    """Webhook name -> the events it wants."""
    source: str


# --- status and result ---------------------------------------------------------------------


class Approval(Strict):
    stage: Stage
    approver: str
    comment: str = ""
    at: str


class BreakGlassRecord(Strict):
    actor: str
    reason: str
    at: str


class GateHold(Strict):
    """Why a production change is waiting, and until when if known."""

    gate: Literal["window", "live_activity"]
    change: str
    reason: str
    until: str | None = None

    def why(self) -> str:
        return f"{self.reason} until {self.until}" if self.until else self.reason


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
    approval_deadline: str | None = None
    gates: ReleaseGates | None = None
    hold: GateHold | None = None
    break_glass: BreakGlassRecord | None = None
    last_analysis: Analysis | None = None
    ignored_signals: list[str] = Field(default_factory=list)
    notification_failures: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    continued_runs: int = 0
    """How many times the release continued as new to keep its history short."""


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
    break_glass: BreakGlassRecord | None = None
    last_analysis: Analysis | None = None


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
    all requests of the listed segments when `segments_to_canary` is set.

    `sequence` rises with each traffic change of a release: a target applies a change
    only if it is not older than the last one it applied for that release, so a forward
    step retried late (its worker was lost) can never undo the rollback that followed."""

    ref: ServiceRef
    sequence: int = 0
    canary_weight: int = Field(ge=0, le=100)
    segments_to_canary: bool
    segment_header: str = "X-User-Type"
    canary_segments: list[str] = Field(default_factory=list)


class TrafficFence(Strict):
    """The last traffic change a target applied for a service: which release, which sequence."""

    release_id: str
    sequence: int


class SlotRequest(Strict):
    ref: ServiceRef
    slot: Slot


class RetireRequest(Strict):
    ref: ServiceRef
    version: str


class CalendarRequest(Strict):
    ref: ServiceRef
    at: datetime


class LiveActivityReport(Strict):
    clear: bool
    counts: dict[str, int] = Field(default_factory=dict)
    detail: str


class Notification(Strict):
    """One notification, sent to every webhook that wants its event."""

    event: NotificationEvent
    sequence: int
    """Per release; with the release id and webhook it makes the idempotency key."""
    release_id: str
    service: str
    version: str
    phase: Phase
    at: str
    message: str
    outcome: Outcome | None = None
    breach: MetricCheck | None = None
    stage: Stage | None = None
    approvers: list[str] = Field(default_factory=list)
    deadline: str | None = None


class NotifyRequest(Strict):
    ref: ServiceRef
    webhook: str
    notification: Notification


class ObserveRequest(Strict):
    """What to read: the provider (None: the target's default), the PromQL overrides,
    and which metrics need raw samples for the baseline comparison. Never a credential:
    connection settings stay in the worker's environment."""

    ref: ServiceRef
    cursor: dict[str, Any] = Field(default_factory=dict)
    provider: MetricsProviderName | None = None
    queries: dict[QueryName, str] = Field(default_factory=dict)
    metrics: list[Metric] = Field(default_factory=list)
    sampled: list[Metric] = Field(default_factory=list)
    sample_seconds: int = 5
    namespace: str = "default"
    canary_version: str | None = None
    stable_version: str | None = None


class LockGuard(Strict):
    """What a service lock needs to put the service back on stable if its release
    dies holding it."""

    holder: str
    service: str
    target: TargetName


# --- continue-as-new -----------------------------------------------------------------------


class Progress(Strict):
    """How far a release got: a continued run skips what is done and resumes the wait
    it was in."""

    locked: bool = False
    preflight: bool = False
    staged: bool = False
    canary_routed: bool = False
    canary_watched: bool = False
    steps_done: int = 0
    """Production steps whose traffic was applied and fully watched."""
    step_routed: bool = False
    """The current step's traffic is applied; its watch goes on."""
    watch_elapsed: int = 0
    """Seconds of the current canary or step watch already analysed."""
    gate_busy_since: datetime | None = None
    """When live activity started holding the current production change."""


class Continuation(Strict):
    """What a release carries into its next run when its history grows long: the
    validated request, its status (approvals, gates, hold, bounded timeline), the
    analysis memory and cursor, and its progress. Its service lock stays held."""

    request: ReleaseRequest
    status: ReleaseStatus
    progress: Progress
    touched: list[Slot] = Field(default_factory=list)
    memory: AnalysisMemory = Field(default_factory=AnalysisMemory)
    cursor: dict[str, Any] = Field(default_factory=dict)
    analysed_at: datetime | None = None
    traffic_sequence: int = 0
    notifications: int = 0
    lock_guarded: bool = True
    """The lock was started as a guard that outlives a run (always, for a run that continues)."""
