"""Release-request validation: turn raw workflow input into a ReleaseRequest, or
into one error message that names every bad field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.models import ReleaseRequest, TrainRequest
from pipeline.models.train import MAX_MEMBERS

MAX_REQUEST_BYTES = 64 * 1024
"""A release request is a page of JSON; a larger one is a mistake or an attack, and
it would be copied into every continued run's history."""
T = TypeVar("T", bound=BaseModel)


class InvalidRequest(ValueError):
    def __init__(self, problems: list[str], what: str = "release request"):
        self.problems = problems
        super().__init__(f"invalid {what}: " + "; ".join(problems))


def parse_request(raw: Any) -> ReleaseRequest:
    return _parse(raw, ReleaseRequest, "release request")


def parse_train(raw: Any) -> TrainRequest:
    """A train request, each problem of a member named by its index and service."""
    try:
        return _parse(raw, TrainRequest, "train request", MAX_REQUEST_BYTES * MAX_MEMBERS)
    except InvalidRequest as invalid:
        services = [member.get("service") if isinstance(member, dict) else None for member in _members(raw)]
        named = [_name_member(problem, services) for problem in invalid.problems]
        raise InvalidRequest(named, "train request") from None


def _parse(raw: Any, model: type[T], what: str, max_bytes: int = MAX_REQUEST_BYTES) -> T:
    if not isinstance(raw, dict):
        raise InvalidRequest([f"input: expected one JSON object, got {type(raw).__name__}"], what)
    try:
        request = model.model_validate(raw)
    except ValidationError as error:
        raise InvalidRequest(describe_problems(error), what) from None
    size = len(request.model_dump_json())
    if size > max_bytes:
        raise InvalidRequest([f"input: {size} bytes of JSON, more than the {max_bytes} a {what} may have"], what)
    return request


def _members(raw: Any) -> list[Any]:
    members = raw.get("releases") if isinstance(raw, dict) else None
    return members if isinstance(members, list) else []


def _name_member(problem: str, services: list[Any]) -> str:
    """`releases.1.policy.x: ...` -> `releases[1] (gallery-service): policy.x: ...`."""
    match = re.match(r"releases\.(\d+)\.?(.*)", problem)
    if not match or int(match.group(1)) >= len(services):
        return problem
    index, rest = int(match.group(1)), match.group(2).removeprefix(": ")
    service = services[index]
    label = f"releases[{index}]" + (f" ({service})" if isinstance(service, str) else "")
    return f"{label}: {rest}" if rest else label


def describe_problems(error: ValidationError) -> list[str]:
    """Each problem as `field.path: message`, for people to read."""
    return [_describe(problem) for problem in error.errors()]


def _describe(problem: Any) -> str:
    field = ".".join(str(part) for part in problem["loc"]) or "input"
    message = problem["msg"].removeprefix("Value error, ")
    return f"{field}: {message}"
