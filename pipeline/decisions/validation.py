"""Release-request validation: turn raw workflow input into a ReleaseRequest, or
into one error message that names every bad field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pipeline.models import ReleaseRequest

MAX_REQUEST_BYTES = 64 * 1024
"""A release request is a page of JSON; a larger one is a mistake or an attack, and
it would be copied into every continued run's history."""


class InvalidRequest(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid release request: " + "; ".join(problems))


def parse_request(raw: Any) -> ReleaseRequest:
    if not isinstance(raw, dict):
        raise InvalidRequest([f"input: expected one JSON object, got {type(raw).__name__}"])
    try:
        request = ReleaseRequest.model_validate(raw)
    except ValidationError as error:
        raise InvalidRequest(describe_problems(error)) from None
    size = len(request.model_dump_json())
    if size > MAX_REQUEST_BYTES:
        raise InvalidRequest([f"input: {size} bytes of JSON, more than the {MAX_REQUEST_BYTES} a release request may have"])
    return request


def describe_problems(error: ValidationError) -> list[str]:
    """Each problem as `field.path: message`, for people to read."""
    return [_describe(problem) for problem in error.errors()]


def _describe(problem: Any) -> str:
    field = ".".join(str(part) for part in problem["loc"]) or "input"
    message = problem["msg"].removeprefix("Value error, ")
    return f"{field}: {message}"
