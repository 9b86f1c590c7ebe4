"""Messages between the workflow and its activities (and the service lock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pipeline.models.base import Metric, Outcome, Phase, Slot, Stage, Strict
from pipeline.models.adapters import MetricsProviderName, TargetName
from pipeline.models.request import QueryName
from pipeline.models.analysis import MetricCheck
from pipeline.models.gates import NotificationEvent
from pipeline.models.flags import FlagComparison


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


class VersionRequest(Strict):
    """An activity about one version of the service (retire, revert to, read health)."""

    ref: ServiceRef
    version: str



class PromoteRequest(Strict):
    """Make the canary stable, keeping the `keep` versions promoted before it known
    (the rollback window), and the one it replaces warm until retired."""

    ref: ServiceRef
    keep: int = Field(2, ge=1, le=10)


class PromotedVersion(Strict):
    """A version that was stable once, with the configuration it ran with, so that a
    revert can run it again exactly so."""

    version: str
    env: dict[str, str] = Field(default_factory=dict)
    release_id: str = ""
    promoted_at: str = ""


class RollbackWindow(Strict):
    """What a target knows of a service's promoted versions, newest first."""

    stable: str | None = None
    versions: list[PromotedVersion] = Field(default_factory=list)
    """The versions promoted before stable that a revert may return to (at most the
    promoting release's `rollback_window` of them), newest first."""
    older: list[str] = Field(default_factory=list)
    """Versions promoted before those, by name only: known, but outside the window."""
    warm: list[str] = Field(default_factory=list)
    """Versions still running without traffic: a revert to one is a routing change."""


class VersionHealth(Strict):
    version: str
    healthy: bool
    detail: str


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
    version: str | None
    """None for a revert that has not chosen its version yet."""
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
    flag: FlagComparison | None = None
    """A feature-flag analysis: canary is the flag's on variant, stable its off variant."""
    at: datetime | None = None
    """The workflow's time when it asked: the end of the window in release time, which the
    sim target reads (a local activity carries no server time of its own)."""


class LockGuard(Strict):
    """What a service lock needs to put the service back on stable if its release
    dies holding it."""

    holder: str
    service: str
    target: TargetName
