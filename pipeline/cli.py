"""releasectl: start, follow and steer releases from a terminal.

  releasectl start gallery 2.0.0 --env LOG_LEVEL=debug --policy @policy.json
  releasectl watch release-gallery-2.0.0-1a2b3c
  releasectl approve release-gallery-2.0.0-1a2b3c --stage canary --approver alice
  releasectl break-glass release-gallery-2.0.0-1a2b3c --actor olivia --reason "INC-42 hotfix"
  releasectl kill release-gallery-2.0.0-1a2b3c --reason "checkout errors" --actor bob
  releasectl list --service gallery --running
  releasectl report release-gallery-2.0.0-1a2b3c -o report.html   (also --format md|json)
  releasectl train start spring-2027.json     (release trains: releasectl train --help)

Temporal is reached as the worker reaches it (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
PIPELINE_TASK_QUEUE, TLS and API-key variables: see pipeline/temporal.py). Everything
here can also be done with the plain `temporal` CLI; this one validates requests
before starting them and shows a release's progress readably.

Exit status: 0 on success, 1 on an error (one line on stderr), 2 when `watch` sees a
release end without being promoted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pipeline import dora, flags_cli, train_cli
from pipeline.decisions.validation import InvalidRequest
from pipeline.logging import configure_logging
from pipeline.models import (
    ApprovalReceipt,
    BreakGlassRecord,
    KillReceipt,
    Outcome,
    ReleaseResult,
    ReleaseStatus,
    Stage,
)
from pipeline.plan import add_plan
from pipeline.report.command import add_report
from pipeline.simulate import add_simulate
from pipeline.temporal import TemporalSettings, connect, exit_process
from pipeline.terminal import ReleaseRow, render_releases, render_result, render_status, workflow_summary

STATUS_QUERY = "status"
EXIT_ERROR = 1
EXIT_NOT_PROMOTED = 2
EXIT_INTERRUPTED = 130
WATCH_INTERVAL_SECONDS = 1.0
QUERY_TIMEOUT = timedelta(seconds=10)
CLEAR_SCREEN = "\x1b[H\x1b[2J"


from pipeline.cli_input import (
    WORKFLOW_TYPE,
    CliError,
    approval_payload,
    break_glass_payload,
    build_request,
    build_revert,
    kill_payload,
    local_user,
    new_release_id,
    operator_payload,
    release_query,
)

# --- commands ----------------------------------------------------------------------------


async def client_for(settings: TemporalSettings) -> Client:
    try:
        return await connect(settings)
    except RuntimeError as error:
        raise CliError(f"cannot reach Temporal at {settings.address}: {error}") from None


def release_handle(client: Client, release_id: str) -> WorkflowHandle[Any, ReleaseResult]:
    return client.get_workflow_handle(release_id, result_type=ReleaseResult)


async def query_status(handle: WorkflowHandle) -> ReleaseStatus:
    """A query is answered by a worker; without one it would wait indefinitely."""
    return await handle.query(STATUS_QUERY, result_type=ReleaseStatus, rpc_timeout=QUERY_TIMEOUT)


async def start_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    request = build_request(args)
    return await start_workflow(settings, WORKFLOW_TYPE, request, args.id or new_release_id(request), "watch")


async def start_workflow(
    settings: TemporalSettings, workflow: str, request: BaseModel, workflow_id: str, watch: str
) -> int:
    """Start a release or a train; its id alone on stdout (for scripts), how to follow it on stderr."""
    client = await client_for(settings)
    try:
        await client.start_workflow(
            workflow, request, id=workflow_id, task_queue=settings.task_queue, static_summary=workflow_summary(request)
        )
    except WorkflowAlreadyStartedError:
        raise CliError(f"a workflow with id {workflow_id} already exists") from None
    print(workflow_id)
    print(f"follow it with: releasectl {watch} {workflow_id}", file=sys.stderr)
    return 0


async def revert_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    """Start a revert and wait for it: it is a routing change, or a deploy and a promote."""
    request = build_revert(args)
    release_id = new_release_id(request)
    client = await client_for(settings)
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        request,
        id=release_id,
        task_queue=settings.task_queue,
        result_type=ReleaseResult,
        static_summary=workflow_summary(request),
    )
    print(f"{release_id} started", file=sys.stderr)
    return await print_result(handle, Outcome.REVERTED)


async def status_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    status = await query_status(release_handle(await client_for(settings), args.id))
    print(status.model_dump_json(indent=2) if args.json else render_status(status))
    return 0


async def watch_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    handle = release_handle(await client_for(settings), args.id)
    await follow(handle, lambda: query_status(handle), render_status)
    return await print_result(handle, Outcome.PROMOTED)


async def follow(handle: WorkflowHandle, status: Callable[[], Awaitable[Any]], render: Callable[[Any], str]) -> None:
    """Show the status each time it changes while the workflow runs (redrawn in place
    on a terminal, appended in a CI log)."""
    redraw = CLEAR_SCREEN if sys.stdout.isatty() else ""
    shown = ""
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        display = render(await status())
        if display != shown:
            print(redraw + display, flush=True)
            shown = display
        await asyncio.sleep(WATCH_INTERVAL_SECONDS)


async def print_result(handle: WorkflowHandle, success: Outcome, render: Callable[[Any], str] = render_result) -> int:
    """Print how the workflow ended; the exit status says whether it ended in `success`."""
    try:
        result = await handle.result()
    except WorkflowFailureError as error:
        raise CliError(f"release {handle.id} did not complete: {innermost_message(error)}") from None
    print(render(result))
    return 0 if result.outcome is success else EXIT_NOT_PROMOTED


def update_command(
    update: str, payload: Callable[[argparse.Namespace], BaseModel], result_type: type[BaseModel]
) -> Callable[[argparse.Namespace, TemporalSettings], Awaitable[int]]:
    """A command that sends `update` and prints the workflow's answer; a refusal by the
    workflow's validator (not an approver, not pending...) is an error line."""

    async def send(args: argparse.Namespace, settings: TemporalSettings) -> int:
        handle = release_handle(await client_for(settings), args.id)
        try:
            answer = await handle.execute_update(update, payload(args), result_type=result_type)
        except WorkflowUpdateFailedError as refused:
            reason = refused.cause.message if isinstance(refused.cause, FailureError) else str(refused)
            raise CliError(f"{update} refused: {reason}") from None
        print(getattr(answer, "message", None) or f"{update} accepted by {args.id}")
        return 0

    return send


def signal_command(
    signal: str, payload: Callable[[argparse.Namespace], BaseModel]
) -> Callable[[argparse.Namespace, TemporalSettings], Awaitable[int]]:
    """A command that sends `signal` with the payload built from its arguments. The
    workflow records a signal it cannot act on in its timeline: see `status`."""

    async def send(args: argparse.Namespace, settings: TemporalSettings) -> int:
        message = payload(args)
        await release_handle(await client_for(settings), args.id).signal(signal, message)
        print(f"sent {signal} to {args.id}")
        return 0

    return send


async def list_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    query = release_query(args.service, args.running)
    client = await client_for(settings)
    rows = [ReleaseRow.from_execution(execution) async for execution in client.list_workflows(query, limit=args.limit)]
    print(render_releases(rows))
    return 0


def innermost_message(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


def describe_rpc_error(error: RPCError) -> str:
    if error.status == RPCStatusCode.DEADLINE_EXCEEDED:
        return f"{error.message} (is a release worker running on the task queue?)"
    if error.status == RPCStatusCode.UNAVAILABLE:
        return f"Temporal is unavailable: {error.message}"
    return error.message


# --- argument parsing --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="releasectl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_start(commands)
    add_revert(commands)
    add_follow(commands)
    add_signals(commands)
    add_list(commands)
    add_simulate(commands)
    add_plan(commands)
    add_report(commands)
    train_cli.add_train(commands)
    dora.add_dora(commands)
    flags_cli.add_flags(commands)
    return parser


def add_start(commands: argparse._SubParsersAction) -> None:
    start = commands.add_parser("start", help="start a release (prints its id)")
    start.add_argument("service")
    start.add_argument("version")
    start.add_argument("--target", default="local")
    start.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    start.add_argument("--policy", help="policy overrides as JSON, or @file.json")
    start.add_argument("--id", help="workflow id (default: release-SERVICE-VERSION-RANDOM)")
    start.add_argument("--author", default=local_user(), help="default: the local user")
    start.add_argument("--description")
    start.set_defaults(handler=start_command)


def add_revert(commands: argparse._SubParsersAction) -> None:
    revert = commands.add_parser(
        "revert", help="go back to a recent version: instantly if it is warm (waits, prints the result)"
    )
    revert.add_argument("service")
    revert.add_argument("--to", metavar="VERSION", help="default: the newest version before the stable one")
    revert.add_argument("--target", default="local")
    revert.add_argument("--reason", required=True)
    revert.add_argument("--actor", default=local_user(), help="default: the local user")
    revert.set_defaults(handler=revert_command)


def add_follow(
    commands: argparse._SubParsersAction,
    what: str = "release",
    show: Callable[..., Awaitable[int]] = status_command,
    follow: Callable[..., Awaitable[int]] = watch_command,
) -> None:
    """`status` and `watch` of a release, or of a train (pipeline/train_cli.py)."""
    status = commands.add_parser("status", help=f"show a {what}'s progress")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the raw status query answer")
    status.set_defaults(handler=show)
    watch = commands.add_parser("watch", help=f"follow a {what} until it ends, then print its result")
    watch.add_argument("id")
    watch.set_defaults(handler=follow)


def decision_arguments() -> argparse.ArgumentParser:
    """The arguments of an approval or a rejection (of a release or a train)."""
    decision = argparse.ArgumentParser(add_help=False)
    decision.add_argument("id")
    decision.add_argument("--stage", required=True, choices=[stage.value for stage in Stage])
    decision.add_argument("--approver", required=True)
    decision.add_argument("--comment", default="")
    return decision


def operator_arguments() -> argparse.ArgumentParser:
    """The arguments of a pause or a resume (of a release or a train)."""
    operator = argparse.ArgumentParser(add_help=False)
    operator.add_argument("id")
    operator.add_argument("--actor", default=local_user(), help="default: the local user")
    operator.add_argument("--reason", default="")
    return operator


def add_signals(commands: argparse._SubParsersAction) -> None:
    decision = decision_arguments()
    approve = commands.add_parser("approve", parents=[decision], help="approve a pending stage (answers at once)")
    approve.set_defaults(handler=update_command("submit_approval", approval_payload, ApprovalReceipt))
    reject = commands.add_parser("reject", parents=[decision], help="reject the release and roll back")
    reject.set_defaults(handler=signal_command("reject", approval_payload))

    glass = commands.add_parser("break-glass", help="let an urgent fix change production outside the calendar")
    glass.add_argument("id")
    glass.add_argument("--actor", required=True)
    glass.add_argument("--reason", required=True)
    glass.set_defaults(handler=update_command("submit_break_glass", break_glass_payload, BreakGlassRecord))

    kill = commands.add_parser(
        "kill", help="pull the kill switch: all traffic back to stable now; answers once it is (the time it took)"
    )
    kill.add_argument("id")
    kill.add_argument("--reason", required=True)
    kill.add_argument("--actor", required=True)
    kill.set_defaults(handler=update_command("submit_kill_switch", kill_payload, KillReceipt))

    for name, help_text in (("pause", "hold traffic where it is"), ("resume", "let a paused release go on")):
        command = commands.add_parser(name, parents=[operator_arguments()], help=help_text)
        command.set_defaults(handler=signal_command(name, operator_payload))


def add_list(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list releases with their search attributes")
    listing.add_argument("--service")
    listing.add_argument("--running", action="store_true", help="only releases still running")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=list_command)


# --- entry point -------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    """Run one command; expected failures become a CliError with one readable line."""
    try:
        return await args.handler(args, TemporalSettings.from_env())
    except InvalidRequest as invalid:
        raise CliError(str(invalid)) from None
    except RPCError as error:
        raise CliError(describe_rpc_error(error)) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        raise CliError(f"status query failed: {error}") from None


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the command and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except CliError as error:
        print(f"releasectl: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`releasectl status ID | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def main() -> None:
    """Logs go to stderr (warnings and worse unless PIPELINE_LOG_LEVEL says otherwise), so
    stdout carries only the command's answer, which scripts read."""
    configure_logging(level=os.environ.get("PIPELINE_LOG_LEVEL", "WARNING"))
    exit_process(run_cli())


if __name__ == "__main__":
    main()
