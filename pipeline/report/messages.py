"""What a release received: approvals (who, when), and the signals it could not act on
and updates it refused; each signal or update as a timeline line."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ValidationError

from pipeline.models import ApprovalDecision, BreakGlass, Operator, ReleaseResult
from pipeline.report.history import Message, ReleaseHistory
from pipeline.report.timeline import Event

SIGNAL_PAYLOADS: dict[str, type[BaseModel] | None] = {
    "approve": ApprovalDecision,
    "reject": None,
    "break_glass": BreakGlass,
    "kill_switch": None,
    "pause": Operator,
    "resume": Operator,
}
"""The signals a release knows, with the payload it must parse (None: a stop order,
honoured whatever its payload)."""


class ApprovalRecord(BaseModel):
    at: datetime
    stage: str
    approver: str
    comment: str = ""
    via: str


class IgnoredMessage(BaseModel):
    at: datetime
    name: str
    sender: str
    why: str


def approvals(history: ReleaseHistory, result: ReleaseResult | None) -> list[ApprovalRecord]:
    """Who approved what, when: the result's list once the release ended (what counted);
    while it runs, the approvals accepted so far (an update's receipt says whether it counted)."""
    if result is not None:
        return [
            ApprovalRecord(
                at=received_at(history, a.approver, a.stage.value) or datetime.fromisoformat(a.at),
                stage=a.stage.value,
                approver=a.approver,
                comment=a.comment,
                via="",
            )
            for a in result.approvals
        ]
    found = []
    for message in history.messages:
        decision = approval_decision(message)
        counted = message.kind == "signal" or (isinstance(message.answer, dict) and message.answer.get("counted"))
        if decision is not None and counted:
            found.append(
                ApprovalRecord(
                    at=message.at,
                    stage=decision.stage.value,
                    approver=decision.approver,
                    comment=decision.comment,
                    via=message.kind,
                )
            )
    return found


def received_at(history: ReleaseHistory, approver: str, stage: str) -> datetime | None:
    """When the approval that counted arrived (the result keeps it to the second only)."""
    for message in history.messages:
        decision = approval_decision(message)
        if decision is not None and decision.approver == approver and decision.stage.value == stage:
            return message.at
    return None


def approval_decision(message: Message) -> ApprovalDecision | None:
    if message.name not in ("approve", "submit_approval") or len(message.payload) != 1:
        return None
    try:
        return ApprovalDecision.model_validate(message.payload[0])
    except ValidationError:
        return None


def ignored(history: ReleaseHistory, counted: list[ApprovalRecord]) -> list[IgnoredMessage]:
    """Signals the release could not act on (unknown, malformed, an approval that did
    not count) and updates it refused."""
    found = []
    for message in history.messages:
        why = ignored_because(message, counted)
        if why is not None:
            found.append(IgnoredMessage(at=message.at, name=message.name, sender=message.identity, why=why))
    return found


def ignored_because(message: Message, counted: list[ApprovalRecord]) -> str | None:
    if message.kind == "update":
        return f"refused: {message.answer}" if message.accepted is False else None
    if message.name not in SIGNAL_PAYLOADS:
        return "no such signal"
    model = SIGNAL_PAYLOADS[message.name]
    if model is None:
        return None
    if len(message.payload) > 1 or (len(message.payload) == 0 and model is not Operator):
        return f"expected one payload, got {len(message.payload)}"
    try:
        decision = model.model_validate(message.payload[0]) if message.payload else None
    except ValidationError as error:
        return f"malformed payload ({error.error_count()} problems)"
    if (
        isinstance(decision, ApprovalDecision)
        and counted
        and not any(a.approver == decision.approver and a.stage == decision.stage.value for a in counted)
    ):
        return f"approval from {decision.approver} for {decision.stage.value} did not count"
    return None


def message_event(message: Message) -> Event:
    """`signal reject from bob (stage production): no` -- who sent it by its own account
    (the approver or actor it names), else the client's identity; and why."""
    fields = message.payload[0] if len(message.payload) == 1 and isinstance(message.payload[0], dict) else {}
    who = fields.get("approver") or fields.get("actor") or message.identity or "?"
    stage = f" (stage {fields['stage']})" if fields.get("stage") else ""
    why = fields.get("reason") or fields.get("comment")
    text = f"{message.kind} {message.name} from {who}{stage}" + (f": {why}" if why else "")
    return Event(at=message.at, kind=message.kind, text=text)
