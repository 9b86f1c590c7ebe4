"""How a feature rollout stops before `enabled`: raised anywhere in the workflow, caught
once in its run, which turns the flag off (if anyone saw it) and reports the outcome."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline.models.flags import FlagOutcome


class RolloutStopped(Exception):
    def __init__(self, outcome: FlagOutcome, reason: str, *, already_off: bool = False):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.already_off = already_off
        """The flag is off already (turned off out of band): nothing to write."""
