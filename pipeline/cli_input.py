"""releasectl's input: release and revert requests and signal payloads built from the
command line and validated exactly as the workflow will validate them, so that a typo
is reported before anything starts."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import search_attributes
from pipeline.decisions.validation import parse_request
from pipeline.models import (
    SERVICE_PATTERN,
    ApprovalDecision,
    BreakGlass,
    KillSwitch,
    Operator,
    ReleaseRequest,
)

WORKFLOW_TYPE = "ReleaseWorkflow"


class CliError(Exception):
    """An expected failure: reported as one line on stderr, without a traceback."""


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise CliError(f"--env {pair!r}: expected NAME=VALUE")
        env[name] = value
    return env


def load_policy(text: str) -> Any:
    """The policy as JSON, given inline or as @path to a JSON file."""
    source = "--policy"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as error:
            raise CliError(f"cannot read policy file {source}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{source} is not valid JSON: {error}") from None


def build_request(args: argparse.Namespace) -> ReleaseRequest:
    """The release request from the command line, validated exactly as the workflow
    will validate it, so that a typo is reported before anything starts."""
    raw: dict[str, Any] = {
        "service": args.service,
        "version": args.version,
        "target": args.target,
        "env": parse_env(args.env),
        "author": args.author,
    }
    if args.policy is not None:
        raw["policy"] = load_policy(args.policy)
    if args.description is not None:
        raw["description"] = args.description
    return parse_request(raw)


def new_release_id(request: ReleaseRequest) -> str:
    kind = "release" if request.revert is None else "revert"
    return f"{kind}-{request.service}-{request.version or 'previous'}-{uuid.uuid4().hex[:6]}"


def build_revert(args: argparse.Namespace) -> ReleaseRequest:
    return parse_request({
        "service": args.service,
        "version": args.to,
        "target": args.target,
        "revert": {"actor": args.actor, "reason": args.reason},
    })


def approval_payload(args: argparse.Namespace) -> ApprovalDecision:
    return ApprovalDecision(stage=args.stage, approver=args.approver, comment=args.comment)


def break_glass_payload(args: argparse.Namespace) -> BreakGlass:
    return BreakGlass(actor=args.actor, reason=args.reason)


def kill_payload(args: argparse.Namespace) -> KillSwitch:
    return KillSwitch(reason=args.reason, actor=args.actor)


def operator_payload(args: argparse.Namespace) -> Operator:
    return Operator(actor=args.actor, reason=args.reason)


def release_query(service: str | None, running: bool) -> str:
    """A visibility query for releases; the service is checked first because it is
    spliced into the query text."""
    clauses = [f'WorkflowType="{WORKFLOW_TYPE}"']
    if service is not None:
        if not re.match(SERVICE_PATTERN, service):
            raise CliError(f"--service {service!r} is not a service name")
        clauses.append(f'{search_attributes.SERVICE.name}="{service}"')
    if running:
        clauses.append('ExecutionStatus="Running"')
    return " AND ".join(clauses)


def local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
