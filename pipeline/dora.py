"""releasectl dora: DORA and safety figures from Temporal, over the releases that ended
in a range (the figures: pipeline/decisions/dora.py).

The releases are found with a visibility query on the pipeline's search attributes
(`WorkflowType="ReleaseWorkflow" AND ExecutionStatus="Completed" AND CloseTime >= ...`);
each one's history gives its request's commit_time, the moment its promote activity
completed and its result. Nothing needs a worker, so the figures cover releases whose
worker is long gone.

  releasectl dora [--service S] [--since 30d] [--json | --prometheus]

--prometheus prints the figures in Prometheus' text format (for node_exporter's
textfile collector or a Pushgateway), labelled by service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution
from temporalio.converter import DataConverter

from pipeline import cli
from pipeline.cli_input import CliError, release_query
from pipeline.decisions.dora import DoraFigures, Durations, ReleaseRecord, dora_figures, record_of
from pipeline.models import ReleaseResult
from pipeline.temporal import TemporalSettings

PROMOTE_ACTIVITIES = {"promote_version", "promote_canary"}
SINCE = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
CONCURRENT_READS = 8


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w`, or an ISO date or timestamp (UTC unless it says otherwise)."""
    matched = SINCE.match(text)
    if matched:
        return now - int(matched.group(1)) * UNITS[matched.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--since {text!r}: give a duration (30d, 12h, 2w) or an ISO date (2026-11-01)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment >= now:
        raise CliError(f"--since {text!r} is not in the past")
    return moment


async def read_record(client: Client, execution: WorkflowExecution) -> ReleaseRecord | None:
    history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
    return await record_from_history(history.events, client.data_converter)


async def record_from_history(events: Sequence[HistoryEvent], converter: DataConverter) -> ReleaseRecord | None:
    """One release from the history of its last run: the request's commit_time, when
    its promote activity completed, its result and when it closed. None for a run
    that did not complete (failed on bad input, terminated, continued as new)."""
    commit_time, promoted_at = None, None
    promotions: set[int] = set()
    for event in events:
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            request = (await converter.decode(payloads[:1], [dict]))[0] if payloads else {}
            commit_time = request.get("commit_time") if isinstance(request, dict) else None
        elif event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name in PROMOTE_ACTIVITIES:
                promotions.add(event.event_id)
        elif event.HasField("activity_task_completed_event_attributes"):
            if event.activity_task_completed_event_attributes.scheduled_event_id in promotions:
                promoted_at = event.event_time.ToDatetime(tzinfo=UTC)
        elif event.HasField("workflow_execution_completed_event_attributes"):
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
            result = (await converter.decode(payloads, [ReleaseResult]))[0]
            closed_at = event.event_time.ToDatetime(tzinfo=UTC)
            return record_of(result, closed_at, commit_time=commit_time, promoted_at=promoted_at)
    return None


async def read_records(client: Client, service: str | None, since: datetime) -> list[ReleaseRecord]:
    query = f'{release_query(service, running=False)} AND ExecutionStatus="Completed" AND CloseTime >= "{since.isoformat()}"'
    executions = [execution async for execution in client.list_workflows(query)]
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def read(execution: WorkflowExecution) -> ReleaseRecord | None:
        async with gate:
            return await read_record(client, execution)

    records = await asyncio.gather(*(read(execution) for execution in executions))
    return [record for record in records if record is not None]


async def dora_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    now = datetime.now(UTC)
    since = parse_since(args.since, now)
    client = await cli.client_for(settings)
    if args.service is not None and not (await client.count_workflows(release_query(args.service, False))).count:
        raise CliError(f"unknown service {args.service!r}: Temporal has no release of it")
    records = await read_records(client, args.service, since)
    if not records:
        whose = f"of {args.service} " if args.service else ""
        raise CliError(f"no release {whose}ended since {since.isoformat(timespec='seconds')} (--since {args.since})")
    by_service = {
        service: dora_figures([r for r in records if r.service == service], since, now)
        for service in sorted({record.service for record in records})
    }
    overall = dora_figures(records, since, now)
    if args.json:
        print(json.dumps({"since": since.isoformat(), "until": now.isoformat(), "all": asdict(overall),
                          "services": {name: asdict(figures) for name, figures in by_service.items()}}, indent=2))
    elif args.prometheus:
        print(render_prometheus(by_service), end="")
    else:
        print(render_text(overall, by_service, args.service, since, now))
    return 0


def add_dora(commands: argparse._SubParsersAction) -> None:
    dora = commands.add_parser(
        "dora", help="DORA and safety figures over the releases that ended in a range",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dora.add_argument("--service", help="one service (default: all, each on its own line too)")
    dora.add_argument("--since", default="30d", help="30d, 12h, 2w or an ISO date (default: 30d)")
    output = dora.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the figures as JSON, for scripts")
    output.add_argument("--prometheus", action="store_true", help="the figures in Prometheus' text format")
    dora.set_defaults(handler=dora_command)


# --- rendering -----------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return "".join(parts) + (f"{seconds}s" if seconds or not any(parts) else "")


def durations(figures: Durations, what: str) -> str:
    if not figures.count:
        return f"- (no {what})"
    return f"median {duration(figures.median_seconds)}, p90 {duration(figures.p90_seconds)}, " \
           f"max {duration(figures.max_seconds)} ({figures.count} {what})"


def render_text(
    overall: DoraFigures, by_service: dict[str, DoraFigures], service: str | None, since: datetime, until: datetime
) -> str:
    rate = "-" if overall.change_failure_rate is None else f"{overall.change_failure_rate:.0%}"
    lines = [
        f"DORA figures for {service or 'all services'}, {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC "
        f"({overall.days:.1f} days, {overall.releases} releases ended)",
        f"  deployment frequency  {overall.deployments} promoted ({overall.deployments_per_day:.2f} a day)",
        f"  change-failure rate   {rate} ({overall.change_failures} of {overall.deployments}: "
        f"{overall.rolled_back_after_promotion} rolled back after promotion, {overall.reverted} reverted)",
        f"  time to restore       {durations(overall.time_to_restore, 'breaches')}",
        f"  lead time             {durations(overall.lead_time, 'with commit_time')}",
        f"  incidents prevented   {overall.incidents_prevented} (breaches rolled back before full traffic; "
        f"{overall.rollbacks_before_promotion} rollbacks before promotion in all)",
    ]
    if len(by_service) > 1:
        lines += ["", f"  {'service':<20} {'promoted':>8} {'a day':>6} {'failure':>8} {'restore':>8} {'lead':>8} {'prevented':>9}"]
        for name, figures in by_service.items():
            failure = "-" if figures.change_failure_rate is None else f"{figures.change_failure_rate:.0%}"
            lines.append(
                f"  {name:<20} {figures.deployments:>8} {figures.deployments_per_day:>6.2f} {failure:>8} "
                f"{duration(figures.time_to_restore.median_seconds):>8} {duration(figures.lead_time.median_seconds):>8} "
                f"{figures.incidents_prevented:>9}"
            )
    return "\n".join(lines)


PROMETHEUS_FIGURES: list[tuple[str, str, Any]] = [
    ("release_dora_deployments_per_day", "Promoted releases a day over the range", lambda f: f.deployments_per_day),
    ("release_dora_change_failure_ratio", "Promoted releases that failed in production", lambda f: f.change_failure_rate),
    ("release_dora_time_to_restore_seconds", "Median time from breach to the rollback's end",
     lambda f: f.time_to_restore.median_seconds),
    ("release_dora_lead_time_seconds", "Median time from commit to promotion", lambda f: f.lead_time.median_seconds),
    ("release_dora_incidents_prevented", "Breaches rolled back before full traffic", lambda f: f.incidents_prevented),
]


def render_prometheus(by_service: dict[str, DoraFigures]) -> str:
    """Gauges over the range, one series a service; a figure without data is left out."""
    lines = []
    for name, help_text, value_of in PROMETHEUS_FIGURES:
        lines += [f"# HELP {name} {help_text} (releasectl dora).", f"# TYPE {name} gauge"]
        for service, figures in by_service.items():
            value = value_of(figures)
            if value is not None:
                lines.append(f'{name}{{service="{service}"}} {float(value):g}')
    return "\n".join(lines) + "\n"
