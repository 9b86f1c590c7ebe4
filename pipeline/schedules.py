"""`releasectl train schedule`: scheduled departures of a train, as Temporal Schedules.

  releasectl train schedule create spring-weekly --file spring-2027.json --cron "0 9 * * 2"
  releasectl train schedule create nightly --file train.json --every 24h --paused
  releasectl train schedule create spring --file spring-2027.json --windows
  releasectl train schedule list | describe NAME | pause NAME | unpause NAME | trigger NAME | delete NAME

A schedule starts ReleaseTrainWorkflow with the train file's request, checked as the
workflow will check it, at each time of its spec: a cron expression in UTC, an interval,
or the opening of each deployment window of the gates file (PIPELINE_GATES_FILE) in its
time zone; Temporal appends the time to the workflow id (train-TRAIN-<time>). Freezes are
not in the spec: a departure into a freeze is held by each member's calendar gate. The
overlap policy is SKIP: while the last departure still runs, the next one is skipped,
never queued.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)

from pipeline import cli, train_cli
from pipeline.cli_input import CliError, local_user
from pipeline.gates import GatesConfigError, load_gates_config
from pipeline.models import TrainRequest
from pipeline.models.gates import BusinessCalendar, Weekday
from pipeline.models.train import TRAIN_PATTERN
from pipeline.temporal import TemporalSettings
from pipeline.terminal import render_table

SPEC_MEMO = "spec"
NEXT_RUNS_SHOWN = 3
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DAY_OF_WEEK = {day: (index + 1) % 7 for index, day in enumerate(Weekday)}
"""Monday first in the gates file, Sunday 0 in a schedule's calendar."""


def parse_every(text: str) -> timedelta:
    """`90s`, `30m`, `6h`, `1d`: a whole number and one unit."""
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if match is None or int(match.group(1)) == 0:
        raise CliError(f"--every {text!r}: expected a duration like 30m, 6h or 1d")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def schedule_spec(args: argparse.Namespace, request: TrainRequest) -> tuple[ScheduleSpec, str]:
    """The spec and how to say it (kept in the schedule's memo: the server keeps a cron
    expression only as calendars)."""
    if args.cron is not None:
        return ScheduleSpec(cron_expressions=[args.cron]), f"cron {args.cron} (UTC)"
    if args.every is not None:
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=parse_every(args.every))]), f"every {args.every}"
    return window_spec(shared_calendar(request))


def shared_calendar(request: TrainRequest) -> BusinessCalendar:
    """The deployment calendar of the train's members: a train departs once, so one."""
    try:
        config, source = load_gates_config()
    except GatesConfigError as error:
        raise CliError(str(error)) from None
    each = [config.for_service(member.service).calendar for member in request.releases]
    if any(calendar != each[0] for calendar in each):
        raise CliError(f"the members' deployment calendars in {source} differ: give --cron or --every")
    calendar = each[0]
    if not calendar.windows:
        raise CliError(f"no deployment windows for these services in {source}: give --cron or --every")
    return calendar


def window_spec(calendar: BusinessCalendar) -> tuple[ScheduleSpec, str]:
    """A departure at the opening of each window, in the calendar's time zone."""
    openings = [
        ScheduleCalendarSpec(
            day_of_week=[ScheduleRange(DAY_OF_WEEK[day]) for day in window.days],
            hour=[ScheduleRange(int(window.start[:2]))],
            minute=[ScheduleRange(int(window.start[3:]))],
        )
        for window in calendar.windows
    ]
    said = "; ".join(f"{'/'.join(window.days)} {window.start}" for window in calendar.windows)
    spec = ScheduleSpec(calendars=openings, time_zone_name=calendar.timezone)
    return spec, f"at each window: {said} ({calendar.timezone})"


def check_name(name: str) -> str:
    if not re.match(TRAIN_PATTERN, name):
        raise CliError(f"schedule name {name!r}: lowercase letters, digits, '.', '_' and '-'")
    return name


async def schedule_handle(args: argparse.Namespace, settings: TemporalSettings) -> ScheduleHandle:
    name = check_name(args.name)
    return (await cli.client_for(settings)).get_schedule_handle(name)


async def create_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    name = check_name(args.name)
    request = train_cli.load_train(args.file)
    spec, said = schedule_spec(args, request)
    action = ScheduleActionStartWorkflow(
        train_cli.TRAIN_WORKFLOW, request, id=f"train-{request.train}", task_queue=settings.task_queue
    )
    schedule = Schedule(
        action=action,
        spec=spec,
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=args.paused, note=f"created paused by {args.actor}" if args.paused else None),
    )
    client = await cli.client_for(settings)
    await client.create_schedule(name, schedule, memo={SPEC_MEMO: said})
    print(f"schedule {args.name}: train {request.train} {said}" + (", paused" if args.paused else ""))
    return 0


async def list_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    client = await cli.client_for(settings)
    rows = []
    async for entry in await client.list_schedules():
        paused = "paused" if entry.schedule is not None and entry.schedule.state.paused else "active"
        rows.append([entry.id, paused, next_run(entry.info.next_action_times if entry.info else [])])
    print(render_table(["name", "state", "next run"], rows) if rows else "no schedules found")
    return 0


async def describe_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    handle = await schedule_handle(args, settings)
    description = await handle.describe()
    schedule, info = description.schedule, description.info
    action = schedule.action
    said = await description.memo_value(SPEC_MEMO, "a spec made elsewhere")
    state = "paused" if schedule.state.paused else "active"
    lines = [
        f"schedule  {description.id}  ({state}{': ' + schedule.state.note if schedule.state.note else ''})",
        f"starts    {getattr(action, 'workflow', '?')} {getattr(action, 'id', '?')}-<time>, {said}",
        f"overlap   {(schedule.policy.overlap or ScheduleOverlapPolicy.SKIP).name.lower()}"
        f"  ({info.num_actions_skipped_overlap} skipped so far)",
        f"next      {', '.join(clock(at) for at in info.next_action_times[:NEXT_RUNS_SHOWN]) or '-'}",
        f"started   {info.num_actions}, running: {', '.join(r.workflow_id for r in info.running_actions) or '-'}",
    ]
    print("\n".join(lines))
    return 0


STATE_CHANGES: dict[str, Callable[[ScheduleHandle, argparse.Namespace], Awaitable[Any]]] = {
    "pause": lambda handle, args: handle.pause(note=f"paused by {args.actor}: {args.reason or 'no reason given'}"),
    "unpause": lambda handle, args: handle.unpause(note=f"unpaused by {args.actor}"),
    "trigger": lambda handle, args: handle.trigger(overlap=ScheduleOverlapPolicy.SKIP),
    "delete": lambda handle, args: handle.delete(),
}
"""pause, unpause, trigger (start a train now, whatever the spec says; skipped while
the last one runs) and delete (trains it started go on)."""


async def state_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    await STATE_CHANGES[args.schedule_command](await schedule_handle(args, settings), args)
    print(f"{args.schedule_command}: schedule {args.name}")
    return 0


def next_run(times: list[datetime]) -> str:
    return clock(times[0]) if times else "-"


def clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def add_schedule(verbs: argparse._SubParsersAction) -> None:
    schedule = verbs.add_parser("schedule", help="scheduled departures (Temporal Schedules)")
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    create = actions.add_parser("create", help="start the train at each time of a cron expression or interval")
    create.add_argument("name")
    create.add_argument("--file", required=True, metavar="TRAIN.json")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help='in UTC, e.g. "0 9 * * 2" (Tuesdays at 09:00)')
    when.add_argument("--every", metavar="DURATION", help="e.g. 30m, 6h, 1d")
    when.add_argument("--windows", action="store_true", help="at the opening of each deployment window (gates file)")
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--actor", default=local_user())
    create.set_defaults(handler=create_command)
    actions.add_parser("list", help="every schedule, its state and next run").set_defaults(handler=list_command)
    for verb, help_text in (
        ("describe", "its spec, overlap policy, next runs and running trains"),
        ("pause", "no departures until unpaused"),
        ("unpause", "departures again"),
        ("trigger", "start a train now"),
        ("delete", "remove it (trains it started go on)"),
    ):
        command = actions.add_parser(verb, help=help_text)
        command.add_argument("name")
        if verb in ("pause", "unpause"):
            command.add_argument("--actor", default=local_user())
            command.add_argument("--reason", default="")
        command.set_defaults(handler=describe_command if verb == "describe" else state_command)
