"""Feature flags (issue #13): what the flag store holds as the pipeline sees it, the
activities' requests and answers, and the `FeatureRolloutWorkflow`'s input, signals
and result. The flagd JSON itself is built and read by pipeline/flags/document.py;
the contract with the services is /work/coord/flags-contract.md and the README."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.models.adapters import MetricsProviderName, TargetName
from pipeline.models.base import (
    MAX_LIST_ITEMS,
    MAX_QUERY_LENGTH,
    SEGMENT_PATTERN,
    SERVICE_PATTERN,
    Input,
    Metric,
    OnInconclusive,
    Stage,
    Strict,
)
from pipeline.models.request import ADR_THRESHOLDS, BaselinePolicy, Bound, ReleasePolicy

FLAG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
ENVIRONMENT_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
SEGMENT_ATTRIBUTE = "segment"
"""The evaluation-context attribute a segment rule matches (services set it from the
request's segment header, X-User-Type); the percentage buckets on `targetingKey`."""

FlagName = Annotated[str, Field(pattern=FLAG_PATTERN)]
VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN)]
VariantValue = bool | int | float | str
"""flagd variants are booleans, numbers, strings or objects; a rollout's are scalars."""


class Serving(StrEnum):
    """Who gets the on variant."""

    OFF = "off"
    """Nobody: defaultVariant is the off variant and there is no targeting."""
    PARTIAL = "partial"
    """The listed segments and/or a percentage of users."""
    ON = "on"
    """Everybody: defaultVariant is the on variant."""


class FlagSetting(Strict):
    """Who gets the on variant: everyone in `segments`, and `percentage` percent of the rest."""

    segments: list[Annotated[str, Field(pattern=SEGMENT_PATTERN)]] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    percentage: int = Field(0, ge=0, le=100)


class FlagState(Strict):
    """One flag in one environment's store, as read back (pipeline/flags/document.py)."""

    flag: str
    environment: str
    exists: bool = True
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    variants: dict[str, Any] = Field(default_factory=dict)
    on_variant: str | None = None
    off_variant: str | None = None
    default_variant: str | None = None
    setting: FlagSetting = Field(default_factory=FlagSetting)
    serving: Serving = Serving.OFF
    killed: bool = False
    """Turned off by a kill (signal, `releasectl flags off`); cleared by the next rollout stage."""
    killed_revision: int | None = None
    kill_reason: str | None = None
    revision: int = 0
    """The store's revision when this flag last changed (the store counts every write)."""
    changed_by: str | None = None
    changed_at: str | None = None
    rollout_id: str | None = None


class FlagChange(Strict):
    """One entry of a store's audit log: who changed what, when, for which release or rollout."""

    at: str
    actor: str
    action: Literal["define", "stage", "kill"]
    flag: str
    environment: str
    reason: str = ""
    revision: int
    release_id: str | None = None
    rollout_id: str | None = None
    before: FlagSetting | None = None
    after: FlagSetting | None = None
    serving: Serving


class FlagRef(Strict):
    """Which flag in which environment's store on which target."""

    flag: FlagName
    environment: Annotated[str, Field(pattern=ENVIRONMENT_PATTERN)] = "production"
    target: TargetName = "local"


class FlagStageRequest(Strict):
    """Activity `apply_flag_stage`: serve `setting`. Creates the flag (dark) when absent
    and `variants` is given. Refused (non-retryable `FlagKilled`) when the flag was killed
    at a revision after `since_revision` (the revision the rollout read when it started),
    so a kill from outside is never undone by a rollout step; a stage of the same rollout
    with a lower `sequence` than the last applied is a no-op (a late retry)."""

    ref: FlagRef
    variants: dict[VariantName, VariantValue] | None = None
    on_variant: VariantName = "on"
    off_variant: VariantName = "off"
    setting: FlagSetting
    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field("", max_length=2000)
    rollout_id: str
    release_id: str | None = None
    sequence: int = 0
    since_revision: int = 0


class FlagKillRequest(Strict):
    """Activity `kill_flag`, and what `releasectl flags off` writes: off for everyone."""

    ref: FlagRef
    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    rollout_id: str | None = None
    release_id: str | None = None


class FlagComparison(Strict):
    """`ObserveRequest.flag`: read the service's metrics split by the flag's variant, the
    on variant as canary and the off variant as baseline (stable)."""

    flag: str
    on_variant: str
    off_variant: str
    environment: str = "production"


class FlagOutcome(StrEnum):
    ENABLED = "enabled"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class FlagStep(Input):
    """One percentage step: serve it, then hold for `hold_seconds` with an analysis
    every `FlagAnalysis.interval_seconds` (or none, with `analysis` False)."""

    percentage: int = Field(ge=1, le=100)
    hold_seconds: int = Field(300, ge=0, le=7 * 86_400)
    analysis: bool = True


class FlagAnalysis(Input):
    """How each step is judged: the release engine's thresholds, baseline comparison
    and inconclusive handling, the on variant's users as canary and the off variant's as
    baseline. Fields mean what they mean in ReleasePolicy."""

    interval_seconds: int = Field(60, ge=1, le=3600)
    thresholds: dict[Metric, Bound] = Field(default_factory=lambda: dict(ADR_THRESHOLDS))
    baseline: BaselinePolicy | None = None
    min_requests: int = Field(10, ge=1)
    max_inconclusive_checks: int = Field(3, ge=1)
    on_inconclusive: OnInconclusive = OnInconclusive.ROLLBACK
    standard_persist_checks: int = Field(3, ge=1)
    recorded_metrics: list[Metric] = Field(default_factory=list, max_length=len(Metric))
    metrics_provider: MetricsProviderName | None = "prometheus"
    queries: dict[str, Annotated[str, Field(min_length=1, max_length=MAX_QUERY_LENGTH)]] = Field(default_factory=dict)
    namespace: str = Field("default", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

    @field_validator("thresholds", mode="before")
    @classmethod
    def _merge_with_defaults(cls, value: Any) -> Any:
        """As in ReleasePolicy: overriding one metric keeps the ADR defaults for the others."""
        return ReleasePolicy._merge_with_defaults(value)

    def policy(self, hold_seconds: int) -> ReleasePolicy:
        """The release policy the analysis engine (pipeline/decisions/) judges a step with."""
        interval = min(self.interval_seconds, max(hold_seconds, 1))
        return ReleasePolicy(
            analysis_interval_seconds=interval,
            step_interval_seconds=max(hold_seconds, interval),
            canary_duration_seconds=max(hold_seconds, interval),
            **self.model_dump(exclude={"interval_seconds"}, exclude_unset=False),
        )


def default_steps() -> list[FlagStep]:
    return [FlagStep(percentage=25), FlagStep(percentage=50), FlagStep(percentage=100)]


class FeatureRolloutRequest(Input):
    """`temporal workflow start --type FeatureRolloutWorkflow --input '<this as JSON>'`.

    ADR-017's FeatureRollout: the flag is defined dark (if new), served to `segments`
    (held and analysed `segment_hold_seconds`), then to each step's percentage of users;
    `enabled` when the last step (100%) holds healthy. Approvals as a release's, from
    the same gates file (the `service`'s rules): `canary` before the segments see it,
    `production` before the first percentage step."""

    flag: FlagName
    service: str = Field(pattern=SERVICE_PATTERN, description="the service whose users and metrics the flag changes")
    environment: Annotated[str, Field(pattern=ENVIRONMENT_PATTERN)] = "production"
    target: TargetName = "local"
    variants: dict[VariantName, VariantValue] | None = Field(
        None, description="the flag's variants; None: the flag must already exist in the store"
    )
    on_variant: VariantName = "on"
    off_variant: VariantName = "off"
    segments: list[Annotated[str, Field(pattern=SEGMENT_PATTERN)]] = Field(
        default_factory=lambda: ["beta-photographer", "internal-team"], max_length=MAX_LIST_ITEMS
    )
    segment_hold_seconds: int = Field(300, ge=0, le=7 * 86_400)
    steps: list[FlagStep] = Field(default_factory=default_steps, min_length=1, max_length=MAX_LIST_ITEMS)
    analysis: FlagAnalysis = Field(default_factory=FlagAnalysis)
    required_approvals: list[Stage] = Field(default_factory=lambda: [Stage.CANARY, Stage.PRODUCTION], max_length=2)
    approval_timeout_seconds: int = Field(86_400, ge=1, le=30 * 86_400)
    author: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    release_id: str | None = Field(None, max_length=200, description="the release that shipped the flag, if any")

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_everyone(cls, steps: list[FlagStep]) -> list[FlagStep]:
        percentages = [step.percentage for step in steps]
        if any(later <= earlier for earlier, later in zip(percentages, percentages[1:])):
            raise ValueError(f"percentages must strictly rise, got {percentages}")
        if percentages[-1] != 100:
            raise ValueError(f"must end at 100, got {percentages[-1]}")
        return steps

    @model_validator(mode="after")
    def _variants_named(self) -> FeatureRolloutRequest:
        if self.on_variant == self.off_variant:
            raise ValueError("on_variant: must differ from off_variant")
        if self.variants is not None:
            for field in ("on_variant", "off_variant"):
                if getattr(self, field) not in self.variants:
                    raise ValueError(f"{field}: {getattr(self, field)!r} is not one of the variants {sorted(self.variants)}")
        return self

    @field_validator("required_approvals")
    @classmethod
    def _unique_stages(cls, stages: list[Stage]) -> list[Stage]:
        return ReleasePolicy._unique_stages(stages)


class FeatureRolloutResult(Strict):
    outcome: FlagOutcome
    flag: str
    environment: str
    reason: str
    setting: FlagSetting
    analyses: int = 0
