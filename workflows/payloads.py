"""Reading what people and scripts send to a release: signals and updates arrive with
any number of payloads of any shape (`temporal workflow signal` with no `--input`,
two `--input`s, a string, a huge reason). None of that may fail a workflow task, so
handlers take `*payloads` and read them here; a stop order is honoured whatever it
says, with what could be read of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from pipeline.decisions.validation import describe_problems

MAX_RECORDED_CHARS = 500
"""How much of a malformed payload's description is kept in status and history."""


class Malformed(Exception):
    """A payload that cannot be used; the message says why, for people to read."""


def parse_one(model: type, payloads: tuple[Any, ...], *, optional: bool = False) -> Any:
    """The one payload a handler expects, as `model`; `optional` accepts none (the
    model's defaults). Raises Malformed naming each problem."""
    if optional and not payloads:
        return model()
    if len(payloads) != 1:
        raise Malformed(f"expected one payload, got {len(payloads)}")
    try:
        return model.model_validate(payloads[0])
    except ValidationError as error:
        raise Malformed(bounded("malformed payload (" + "; ".join(describe_problems(error)) + ")")) from None


def parse_update(model: type, payloads: tuple[Any, ...]) -> Any:
    """An update's payload, or a rejection from its validator (not worth retrying) that
    names each bad field: nothing is recorded for an update that does not parse."""
    try:
        return parse_one(model, payloads)
    except Malformed as malformed:
        raise ApplicationError(str(malformed), type="MalformedUpdate", non_retryable=True) from None


@dataclass(frozen=True)
class StopOrder:
    """A kill switch or rejection as far as it could be read. Stopping is always safe,
    so an order that does not parse still stops the release."""

    actor: str
    text: str
    stage: str | None
    problem: str | None


def read_stop_order(payloads: tuple[Any, ...], actor_field: str, text_field: str) -> StopOrder:
    fields = payloads[0] if len(payloads) == 1 and isinstance(payloads[0], dict) else {}
    problem = None
    if len(payloads) != 1:
        problem = f"expected one payload, got {len(payloads)}"
    elif not isinstance(payloads[0], dict):
        problem = f"expected a JSON object, got {type(payloads[0]).__name__}"
    actor = _text(fields.get(actor_field), 200)
    text = _text(fields.get(text_field), 2000)
    stage = fields.get("stage") if fields.get("stage") in ("canary", "production") else None
    if problem is None and (actor is None or text is None):
        problem = f"missing or empty {actor_field!r} or {text_field!r}"
    return StopOrder(actor=actor or "unknown", text=text or "", stage=stage, problem=problem)


def bounded(text: str, limit: int = MAX_RECORDED_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return bounded(str(value), limit)
