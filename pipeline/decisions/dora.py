"""DORA and safety figures over finished releases: pure, so that they can be checked
over recorded results (tests/test_dora.py); `pipeline/dora.py` reads the releases
from Temporal.

  deployment frequency   releases whose version was promoted (reached all traffic),
                         per day of the range
  change-failure rate    of those, the share that failed in production: rolled back
                         after promotion (a breach, kill switch or rejection during
                         bake), or reverted later by a revert release
  time to restore        for each breach: from the analysis that found it to the end
                         of the rollback (all traffic on the stable version)
  lead time              from the request's optional `commit_time` to promotion
  incidents prevented    rollbacks before full traffic that analysis called (a breach
                         at the canary or a step), beside all rollbacks before promotion
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.models import Outcome, ReleaseResult


@dataclass(frozen=True)
class ReleaseRecord:
    """One finished release, as the figures need it."""

    service: str
    version: str | None
    outcome: Outcome
    closed_at: datetime
    after_promotion: bool = False
    breach_at: datetime | None = None
    """When the analysis that found a breach ran."""
    commit_time: datetime | None = None
    promoted_at: datetime | None = None
    """When its version got all traffic; None if it never did (or is not known)."""
    reverted_from: str | None = None
    """For a revert: the version it took production away from."""

    @property
    def reached_production(self) -> bool:
        return self.outcome is Outcome.PROMOTED or self.after_promotion


def record_of(
    result: ReleaseResult, closed_at: datetime, *, commit_time: str | None = None, promoted_at: datetime | None = None
) -> ReleaseRecord:
    """A record from a release's result, the time it closed, its request's commit time
    and (if known) the time of its promotion. A breach is a metric's, or a data
    consistency violation found at an analysis, which rolls back the same way."""
    breach_at = None
    inconsistent = result.outcome is Outcome.ROLLED_BACK and result.consistency is not None and result.consistency.violated
    if (result.breach is not None or inconsistent) and result.last_analysis is not None:
        breach_at = datetime.fromisoformat(result.last_analysis.at)
    if promoted_at is None and result.outcome is Outcome.PROMOTED:
        promoted_at = closed_at
    return ReleaseRecord(
        service=result.service or "unknown",
        version=result.version,
        outcome=result.outcome,
        closed_at=closed_at,
        after_promotion=result.after_promotion,
        breach_at=breach_at,
        commit_time=datetime.fromisoformat(commit_time) if commit_time else None,
        promoted_at=promoted_at,
        reverted_from=result.revert.from_version if result.revert else None,
    )


@dataclass(frozen=True)
class Durations:
    count: int
    median_seconds: float | None
    p90_seconds: float | None
    max_seconds: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        if not seconds:
            return cls(0, None, None, None)
        ordered = sorted(seconds)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return cls(len(ordered), statistics.median(ordered), p90, ordered[-1])


@dataclass(frozen=True)
class DoraFigures:
    days: float
    releases: int
    deployments: int
    deployments_per_day: float
    change_failures: int
    rolled_back_after_promotion: int
    reverted: int
    change_failure_rate: float | None
    """None when nothing reached production."""
    time_to_restore: Durations
    lead_time: Durations
    rollbacks_before_promotion: int
    incidents_prevented: int


def dora_figures(records: Sequence[ReleaseRecord], since: datetime, until: datetime) -> DoraFigures:
    """The figures over the releases that ended in [since, until]."""
    inside = [record for record in records if since <= record.closed_at <= until]
    days = max((until - since) / timedelta(days=1), 1 / 24)
    deployed = [record for record in inside if record.reached_production]
    reverted = reverted_releases(inside)
    after_promotion = sum(record.after_promotion for record in deployed)
    failures = after_promotion + sum(1 for record in deployed if record in reverted and not record.after_promotion)
    before_promotion = [
        record for record in inside if record.outcome is Outcome.ROLLED_BACK and not record.after_promotion
    ]
    return DoraFigures(
        days=days,
        releases=len(inside),
        deployments=len(deployed),
        deployments_per_day=len(deployed) / days,
        change_failures=failures,
        rolled_back_after_promotion=after_promotion,
        reverted=len(reverted),
        change_failure_rate=failures / len(deployed) if deployed else None,
        time_to_restore=Durations.of(
            [
                (record.closed_at - record.breach_at).total_seconds()
                for record in inside
                if record.breach_at is not None and record.outcome is Outcome.ROLLED_BACK
            ]
        ),
        lead_time=Durations.of(
            [
                (record.promoted_at - record.commit_time).total_seconds()
                for record in deployed
                if record.commit_time is not None and record.promoted_at is not None
            ]
        ),
        rollbacks_before_promotion=len(before_promotion),
        incidents_prevented=sum(record.breach_at is not None for record in before_promotion),
    )


def reverted_releases(records: Sequence[ReleaseRecord]) -> set[ReleaseRecord]:
    """The promoted releases that a later revert of the same service took production
    away from (the newest promotion of that version before the revert)."""
    reverted = set()
    for revert in (record for record in records if record.outcome is Outcome.REVERTED and record.reverted_from):
        candidates = [
            record
            for record in records
            if record.service == revert.service
            and record.version == revert.reverted_from
            and record.outcome is Outcome.PROMOTED
            and record.closed_at <= revert.closed_at
        ]
        if candidates:
            reverted.add(max(candidates, key=lambda record: record.closed_at))
    return reverted
