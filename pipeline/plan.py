"""`releasectl plan REQUEST.json [--json]`: what a release would do if it started now,
without starting anything. The request is validated as the workflow validates it;
then the worker's gates file (PIPELINE_GATES_FILE, as the worker reads it) says which
approvals it would wait for and from whom, the deployment calendar when each of its
production changes could happen, and the platform's live-activity endpoint whether a
production change would be held right now (read when it can be: an endpoint that
cannot be read is said so, never taken as clear). The phases' durations come from the
policy (pipeline/decisions/plan.py)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pipeline.cli_input import CliError
from pipeline.decisions.plan import ReleasePlan, plan_release
from pipeline.decisions.validation import parse_request
from pipeline.gates import GatesConfigError, load_gates_config, release_gates
from pipeline.http import http_client
from pipeline.models import LiveActivityCheck, ReleaseRequest, Slot
from pipeline.simulate import elapsed, read_request
from pipeline.targets import target_for
from pipeline.temporal import TemporalSettings
from pipeline.terminal import render_table


async def live_activity_now(request: ReleaseRequest, check: LiveActivityCheck | None) -> str:
    """What the live-activity gate would see now, in words."""
    if check is None or (check.targets and request.target not in check.targets):
        return f"no live-activity endpoint configured for {request.service} on {request.target}: clear"
    url = check.url
    try:
        if "{stable}" in url:
            target = target_for(request.target)
            if await target.stable_version(request.service) is None:
                return "no stable version serves users yet: clear"
            url = url.replace("{stable}", target.endpoint(request.service, Slot.STABLE))
        async with http_client(timeout=check.timeout_seconds) as client:
            response = await client.get(url)
        response.raise_for_status()
        counts = {name: int(response.json()[name]) for name in check.counters}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, OSError) as error:
        return f"unreadable now ({type(error).__name__}): a production change would wait for it"
    except Exception as error:  # a target that cannot be built here (no cluster access): said, not fatal
        return f"unreadable from here ({type(error).__name__}: {error})"
    active = ", ".join(f"{count} {name}" for name, count in counts.items() if count > 0)
    return f"held: {active}" if active else "clear: no live activity"


async def make_plan(raw: dict[str, Any], now: datetime) -> tuple[ReleasePlan, ReleaseRequest, str, str]:
    """The plan, the request, where the gates came from and the live activity now."""
    request = parse_request(raw)
    try:
        config, source = load_gates_config()
    except GatesConfigError as error:
        raise CliError(str(error)) from None
    service_gates = config.for_service(request.service)
    plan = plan_release(request, service_gates.calendar, release_gates(config, request.service, source), now)
    return plan, request, source, await live_activity_now(request, service_gates.live_activity)


def render(plan: ReleasePlan, request: ReleaseRequest, source: str, live: str) -> str:
    lines = [f"plan for {request.service} {request.version or '(revert)'} on {request.target}, "
             f"from {plan.started_at:%Y-%m-%d %H:%M} UTC (gates: {source})", ""]
    if plan.approvals:
        for hold in plan.approvals:
            who = "anyone" if hold.anyone else ", ".join(hold.approvers) or "nobody"
            extra = "; not the author" if hold.forbid_author else ""
            lines.append(f"approval {hold.stage.value}: {hold.min_approvals} of {who}{extra}")
    else:
        lines.append("approvals: none needed")
    lines.append(f"live activity now: {live}")
    for hold in plan.holds:
        until = f"held until {hold.opens_at:%Y-%m-%d %H:%M} UTC" if hold.opens_at else "would fail"
        lines.append(f"calendar at {hold.at:%Y-%m-%d %H:%M} UTC ({hold.change}): {until}: {hold.reason}")
    if not plan.holds:
        lines.append("calendar: open for every production change")
    rows = [[elapsed((phase.starts_at - plan.started_at).total_seconds()), phase.phase.value,
             elapsed(phase.seconds).removeprefix("+"), phase.detail] for phase in plan.phases]
    lines += ["", render_table(["at", "phase", "takes", "what"], rows), ""]
    lines.append(f"would fail: {plan.fails}" if plan.fails else
                 f"total: {elapsed(plan.total_seconds).removeprefix('+')}, done about {plan.ends_at:%Y-%m-%d %H:%M} UTC"
                 " (approvals and test suites take extra)")
    return "\n".join(lines)


def as_json(plan: ReleasePlan, request: ReleaseRequest, source: str, live: str) -> dict[str, Any]:
    return {
        "service": request.service, "version": request.version, "target": request.target, "gates_source": source,
        "started_at": plan.started_at.isoformat(),
        "approvals": [{"stage": hold.stage.value, "approvers": hold.approvers, "anyone": hold.anyone,
                       "min_approvals": hold.min_approvals, "forbid_author": hold.forbid_author,
                       "timeout_seconds": hold.timeout_seconds} for hold in plan.approvals],
        "calendar_holds": [{"change": hold.change, "at": hold.at.isoformat(), "reason": hold.reason,
                            "opens_at": hold.opens_at.isoformat() if hold.opens_at else None} for hold in plan.holds],
        "live_activity": live,
        "phases": [{"phase": phase.phase.value, "starts_at": phase.starts_at.isoformat(), "seconds": phase.seconds,
                    "detail": phase.detail} for phase in plan.phases],
        "total_seconds": plan.total_seconds,
        "fails": plan.fails,
    }


async def plan_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    """Starts nothing and needs no Temporal: `settings` are not used."""
    plan, request, source, live = await make_plan(read_request(Path(args.request)), datetime.now(UTC))
    print(json.dumps(as_json(plan, request, source, live), indent=2) if args.json else render(plan, request, source, live))
    return 0


def add_plan(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "plan", help="validate a release request and say what it would do now: gates, phases, durations (starts nothing)"
    )
    command.add_argument("request", metavar="REQUEST.json")
    command.add_argument("--json", action="store_true", help="the plan as JSON")
    command.set_defaults(handler=plan_command)
