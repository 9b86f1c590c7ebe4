"""`releasectl report RELEASE_ID [--format html|md|json] [-o FILE]`: a release's report
from its history alone, so it works after the worker is gone and while the release runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from pipeline.cli_input import CliError
from pipeline.temporal import TemporalSettings, connect

MAX_RUNS = 100
"""Runs followed back: a release continues as new every 8,000 events."""

RENDERERS = {
    "html": ("pipeline.report.html", "render_html"),
    "md": ("pipeline.report.markdown", "render_markdown"),
    "json": ("pipeline.report.as_json", "render_json"),
}
"""Each format's module, imported when asked for: the report's analysis (scipy) and
plots (matplotlib) would otherwise slow every releasectl command, the kill switch's too."""


def render(history: WorkflowHistory, format_: str) -> str:
    """The report of `history` in `format_`; a history that is not a readable release is a CliError."""
    from pipeline.report.history import HistoryUnreadable, NotARelease
    from pipeline.report.model import report_of

    module, function = RENDERERS[format_]
    renderer = getattr(importlib.import_module(module), function)
    try:
        return renderer(report_of(history))
    except NotARelease as error:
        raise CliError(f"{history.workflow_id} is not a release: it is {error}") from None
    except HistoryUnreadable as error:
        raise CliError(f"cannot report on {history.workflow_id}: {error}") from None


async def fetch(settings: TemporalSettings, release_id: str) -> WorkflowHistory:
    try:
        client: Client = await connect(settings)
    except RuntimeError as error:
        raise CliError(f"cannot reach Temporal at {settings.address}: {error}") from None
    try:
        return await whole_history(client, release_id)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise CliError(f"no workflow with id {release_id} in namespace {settings.namespace}") from None
        raise


async def whole_history(client: Client, workflow_id: str) -> WorkflowHistory:
    """The latest run's history, preceded by the runs it continued (a long release
    continues as new), so the report covers the release from its start."""
    events = list((await client.get_workflow_handle(workflow_id).fetch_history()).events)
    for _ in range(MAX_RUNS):
        previous = events[0].workflow_execution_started_event_attributes.continued_execution_run_id if events else ""
        if not previous:
            break
        earlier = await client.get_workflow_handle(workflow_id, run_id=previous).fetch_history()
        events = [*earlier.events, *events]
    return WorkflowHistory(workflow_id, events)


async def report_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    text = render(await fetch(settings, args.id), args.format)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text)
    except OSError as error:
        raise CliError(f"cannot write {args.output}: {error.strerror}") from None
    print(f"report of {args.id} written to {args.output}", file=sys.stderr)
    return 0


def add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="a release's report from its history (timeline, traffic, analyses); works without a worker"
    )
    report.add_argument("id")
    report.add_argument("--format", choices=sorted(RENDERERS), default="html")
    report.add_argument("-o", "--output", metavar="FILE", help="default: stdout")
    report.set_defaults(handler=report_command)
