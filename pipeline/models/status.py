"""What a release reports (the status query and its result) and what it carries into
its next run when it continues as new."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pipeline.models.analysis import Analysis, AnalysisMemory, MetricCheck, VersionMetrics
from pipeline.models.base import Outcome, Phase, Slot, Stage, Strict
from pipeline.models.gates import ReleaseGates
from pipeline.models.migration import ConsistencyReport
from pipeline.models.request import ReleaseRequest


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

    gate: Literal["window", "live_activity", "rollback_target"]
    change: str
    reason: str
    until: str | None = None

    def why(self) -> str:
        return f"{self.reason} until {self.until}" if self.until else self.reason


class RevertRecord(Strict):
    """A revert: who asked, why, from which version to which, and how."""

    actor: str
    reason: str
    from_version: str | None
    to_version: str
    warm: bool
    """True: a routing change to a version still running; False: deployed again."""
    at: str


class MigrationState(Strict):
    """Where a release's schema migration stands on production."""

    expand: str
    contract: str | None = None
    backfill: str | None = None
    before: str | None = None
    """The production revision before the expand: what a rollback downgrades to."""
    expanded: bool = False
    backfilled: bool = False
    contracted: bool = False
    """The point of no return: after contract there is no automatic schema rollback."""
    reversed: bool = False
    staging_before: str | None = None
    """The staging revision before this release: where a release that does not keep its
    expand on production leaves staging, so that staging follows production."""
    staging_restored: bool = False


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
    warm_version: str | None = None
    """The previous version, kept running without traffic while the new one bakes."""
    bake_until: str | None = None
    after_promotion: bool = False
    """The release rolled back after its version was promoted (a breach during bake)."""
    revert: RevertRecord | None = None
    before_release: VersionMetrics | None = None
    """The previous version's metrics before the canary started: what bake compares with."""
    migration: MigrationState | None = None
    consistency: ConsistencyReport | None = None
    """The last data-consistency checks (a violation is an immediate breach)."""


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
    after_promotion: bool = False
    revert: RevertRecord | None = None
    migration: MigrationState | None = None
    consistency: ConsistencyReport | None = None
    warm_version: str | None = None
    """The previous version, still running without traffic (a release that keeps it)."""


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
    promoted: bool = False
    baked: bool = False


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
    before_cursor: dict[str, Any] = Field(default_factory=dict)
    lock_guarded: bool = True
    """The lock was started as a guard that outlives a run (always, for a run that continues)."""
