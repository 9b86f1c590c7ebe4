"""The exception that ends the forward path of a release."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline.models import MetricCheck, Outcome


class ReleaseStopped(Exception):
    """Ends the forward path of a release; `run` rolls back and reports the outcome."""

    def __init__(self, outcome: Outcome, reason: str, breach: MetricCheck | None = None):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.breach = breach
