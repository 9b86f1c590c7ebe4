"""Payloads of the signals and updates people and scripts send a release, and the
updates' answers."""

from __future__ import annotations

from pydantic import Field

from pipeline.models.base import Input, Outcome, Stage, Strict


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
