"""Shared bases, the vocabulary of a release (stages, phases, outcomes, slots, metrics,
severities) and the patterns and bounds its inputs are checked against."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


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
    BAKE = "bake"
    REVERT = "revert"
    ROLLBACK = "rollback"
    DONE = "done"


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    EXPIRED = "expired"
    """An approval did not arrive before its deadline."""
    FAILED = "failed"
    REVERTED = "reverted"


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


class Concurrency(StrEnum):
    """What a release does when another release of the same service is running."""

    REFUSE = "refuse"
    QUEUE = "queue"


class OutsideWindow(StrEnum):
    """What a production change does outside the deployment calendar's windows."""

    WAIT = "wait"
    FAIL = "fail"


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
