"""The release's Prometheus metrics (names in pipeline/telemetry.py), emitted through
`workflow.metric_meter()`: it records nothing while a workflow replays and adds no
commands, so metrics change no history and need no patch.

Most metrics follow the status: every timeline note (`Timeline._note`) calls
`_observe_status`, which compares the status with what it last saw and emits what
changed: the phase and canary weight gauges, each new analysis and its checks, each
new gate hold, the wait of an approval that ended, and the time until traffic is back
on stable during a rollback. The start and the end are counted where they happen.

What it last saw lives only in this run's memory: a continued run, or a worker that
replays a release after a restart, starts from a snapshot of the status it resumes
with and emits only what changes after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from temporalio import workflow
from temporalio.common import MetricMeter

with workflow.unsafe.imports_passed_through():
    from pipeline import telemetry
    from pipeline.models import Analysis, GateHold, MetricCheck, Outcome, Phase, Stage

APPROVAL_STAGE = {Phase.CANARY_APPROVAL: Stage.CANARY, Phase.PRODUCTION_APPROVAL: Stage.PRODUCTION}
CANCELLED = "release cancelled"
CAUSES = ("breach", "analysis", "kill_switch", "reject", "cancel", "expiry", "bake", "failure", "orphaned")
GATES = get_args(GateHold.model_fields["gate"].annotation)


@dataclass
class Seen:
    """What the metrics last showed of this release."""

    phase: Phase
    phase_since: datetime | None
    """None for the phase a run resumed in: when it began is not known to this run."""
    weight: int
    analysis: Analysis | None
    hold: GateHold | None
    stopped_at: datetime | None = None
    """When the rollback under way was ordered; None once traffic is back on stable."""


def check_verdict(check: MetricCheck) -> str:
    return "inconclusive" if check.passed is None else ("pass" if check.passed else "fail")


def rollback_cause(outcome: Outcome, reason: str, breach: MetricCheck | None, *, forced: bool, baking: bool) -> str:
    """Why a release that entered its rollback phase did: a bounded label."""
    if outcome is Outcome.REJECTED:
        return "reject"
    if outcome is Outcome.EXPIRED:
        return "expiry"
    if outcome is Outcome.FAILED:
        return "failure"
    if breach is not None:
        return "bake" if baking else "breach"
    if forced:
        return "kill_switch"
    return "cancel" if reason == CANCELLED else "analysis"


class Telemetry:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    _seen: Seen | None = None

    def _count_start(self) -> None:
        """Count the release, and show every outcome, cause and gate of its service at 0
        so that a first rollback is an increase a rate() sees, not a new series."""
        if self._continued:
            return
        meter, labels = self._meter(), self._labels()
        meter.create_counter(telemetry.STARTED).add(1, labels)
        for name, label, values in (
            (telemetry.ENDED, "outcome", [outcome.value for outcome in Outcome]),
            (telemetry.ROLLBACKS, "cause", CAUSES),
            (telemetry.GATE_HOLDS, "gate", GATES),
        ):
            counter = meter.create_counter(name)
            for value in values:
                counter.add(0, {**labels, label: value})
        held = meter.create_gauge(telemetry.GATE_HELD)
        for gate in GATES:
            held.set(0, {**labels, "gate": gate})

    def _count_end(self, outcome: Outcome, reason: str, breach: MetricCheck | None) -> None:
        meter, labels = self._meter(), self._labels()
        meter.create_counter(telemetry.ENDED).add(1, {**labels, "outcome": outcome.value})
        rolled_back = any(entry.phase == Phase.ROLLBACK for entry in self._status.timeline)
        if rolled_back:
            cause = rollback_cause(
                outcome, reason, breach, forced=self._rollback_forced, baking=self._status.after_promotion
            )
            meter.create_counter(telemetry.ROLLBACKS).add(1, {**labels, "cause": cause})

    def _observe_status(self) -> None:
        status = self._status
        if status.service is None:
            return
        seen = self._seen
        if seen is None:  # a new run: show where it stands, count nothing twice
            self._seen = Seen(status.phase, None, status.canary_weight, status.last_analysis, status.hold)
            self._show_phase(status.phase)
            self._show_weight(status.canary_weight)
            return
        if status.phase is not seen.phase:
            self._left_phase(seen, status.phase)
        if status.canary_weight != seen.weight:
            self._show_weight(status.canary_weight)
            seen.weight = status.canary_weight
        if status.last_analysis is not None and status.last_analysis is not seen.analysis:
            self._count_analysis(status.last_analysis)
            seen.analysis = status.last_analysis
        if status.hold != seen.hold:
            self._show_hold_change(seen.hold, status.hold)
            seen.hold = status.hold
        if seen.stopped_at is not None and not self._canary_may_get_traffic and status.canary_weight == 0:
            seconds = (workflow.now() - seen.stopped_at).total_seconds()
            self._meter().create_histogram_float(telemetry.TIME_TO_STABLE).record(seconds, self._labels())
            seen.stopped_at = None

    def _left_phase(self, seen: Seen, phase: Phase) -> None:
        now = workflow.now()
        if seen.phase in APPROVAL_STAGE and seen.phase_since is not None:
            stage = APPROVAL_STAGE[seen.phase].value
            waited = (now - seen.phase_since).total_seconds()
            self._meter().create_histogram_float(telemetry.APPROVAL_WAIT).record(
                waited, {**self._labels(), "stage": stage}
            )
        if phase is Phase.ROLLBACK:
            seen.stopped_at = self._stop_ordered_at or self._breach_found_at() or now
        self._show_phase(phase)
        seen.phase, seen.phase_since = phase, now

    def _breach_found_at(self) -> datetime | None:
        """The analysis that called for this rollback, if one did."""
        analysis = self._status.last_analysis
        if analysis is not None and analysis.decision.startswith("rollback"):
            return self._analysed_at
        return None

    def _show_phase(self, current: Phase) -> None:
        telemetry.show_phase(self._meter(), self._labels()["service"], current)

    def _show_weight(self, weight: int) -> None:
        self._meter().create_gauge(telemetry.CANARY_WEIGHT).set(weight, self._labels())

    def _count_analysis(self, analysis: Analysis) -> None:
        meter, labels = self._meter(), self._labels()
        meter.create_counter(telemetry.ANALYSES).add(
            1, {**labels, "phase": analysis.phase.value, "verdict": analysis.verdict.value}
        )
        checks = meter.create_counter(telemetry.CHECKS)
        for check in analysis.checks:
            checks.add(1, {**labels, "metric": str(check.metric), "kind": "threshold", "verdict": check_verdict(check)})
        for compared in analysis.baseline.metrics if analysis.baseline else []:
            checks.add(1, {**labels, "metric": str(compared.metric), "kind": "baseline", "verdict": compared.verdict.value})

    def _show_hold_change(self, before: GateHold | None, after: GateHold | None) -> None:
        meter, labels = self._meter(), self._labels()
        held = meter.create_gauge(telemetry.GATE_HELD)
        if before is not None and (after is None or after.gate != before.gate):
            held.set(0, {**labels, "gate": before.gate})
        if after is not None:
            meter.create_counter(telemetry.GATE_HOLDS).add(1, {**labels, "gate": after.gate})
            held.set(1, {**labels, "gate": after.gate})

    def _labels(self) -> dict[str, str]:
        return {"service": self._status.service or "unknown"}

    def _meter(self) -> MetricMeter:
        return workflow.metric_meter()
