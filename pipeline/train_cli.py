"""`releasectl train`: start, follow and steer release trains (workflows/train/).

  releasectl train start spring-2027.json
  releasectl train status train-spring-2027-1a2b3c
  releasectl train watch train-spring-2027-1a2b3c
  releasectl train approve train-spring-2027-1a2b3c --stage production --approver alice
  releasectl train kill train-spring-2027-1a2b3c --reason "checkout errors" --actor bob
  releasectl train pause|resume train-spring-2027-1a2b3c [--actor A --reason R]

The train file is checked as the workflow will check it, so a bad member is named and
nothing starts. Connection, errors and exit statuses are releasectl's (pipeline/cli.py);
`watch` exits 0 when every member is promoted, 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from pipeline import cli, schedules
from pipeline.cli_input import CliError, approval_payload, kill_payload, operator_payload
from pipeline.decisions.validation import parse_train
from pipeline.models import Outcome, TrainRequest, TrainResult, TrainStatus
from pipeline.temporal import TemporalSettings
from pipeline.train_terminal import render_train, render_train_result

TRAIN_WORKFLOW = "ReleaseTrainWorkflow"


def load_train(path: str) -> TrainRequest:
    """The train file, validated exactly as the workflow will validate it."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as error:
        raise CliError(f"cannot read train file {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not valid JSON: {error}") from None
    return parse_train(raw)


def new_train_id(request: TrainRequest) -> str:
    return f"train-{request.train}-{uuid.uuid4().hex[:6]}"


def train_handle(client: Client, train_id: str) -> WorkflowHandle[Any, TrainResult]:
    return client.get_workflow_handle(train_id, result_type=TrainResult)


async def query_train(handle: WorkflowHandle) -> TrainStatus:
    return await handle.query(cli.STATUS_QUERY, result_type=TrainStatus, rpc_timeout=cli.QUERY_TIMEOUT)


async def start_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    request = load_train(args.file)
    return await cli.start_workflow(settings, TRAIN_WORKFLOW, request, args.id or new_train_id(request), "train watch")


async def status_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    status = await query_train(train_handle(await cli.client_for(settings), args.id))
    print(status.model_dump_json(indent=2) if args.json else render_train(status, args.id))
    return 0


async def watch_command(args: argparse.Namespace, settings: TemporalSettings) -> int:
    handle = train_handle(await cli.client_for(settings), args.id)
    await cli.follow(handle, lambda: query_train(handle), lambda status: render_train(status, args.id))
    return await cli.print_result(handle, Outcome.PROMOTED, render_train_result)


# --- argument parsing --------------------------------------------------------------------


def add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="release several services together, in dependency order (releasectl train --help)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = train.add_subparsers(dest="train_command", required=True, metavar="COMMAND")
    start = verbs.add_parser("start", help="validate a train file and start the train (prints its id)")
    start.add_argument("file", metavar="TRAIN.json")
    start.add_argument("--id", help="workflow id (default: train-TRAIN-RANDOM)")
    start.set_defaults(handler=start_command)
    cli.add_follow(verbs, "train", status_command, watch_command)
    add_steering(verbs)
    schedules.add_schedule(verbs)


def add_steering(verbs: argparse._SubParsersAction) -> None:
    """The train's signals; the train notes in its timeline any it cannot act on."""
    approve = verbs.add_parser(
        "approve", parents=[cli.decision_arguments()], help="with per_train approvals: approve a stage for every member"
    )
    approve.set_defaults(handler=cli.signal_command("approve", approval_payload))

    kill = verbs.add_parser("kill", help="pull the train's kill switch: every member back to stable at once")
    kill.add_argument("id")
    kill.add_argument("--reason", required=True)
    kill.add_argument("--actor", required=True)
    kill.set_defaults(handler=cli.signal_command("kill_switch", kill_payload))

    for name, help_text in (("pause", "no member moves on"), ("resume", "let a paused train go on")):
        operator = verbs.add_parser(name, parents=[cli.operator_arguments()], help=help_text)
        operator.set_defaults(handler=cli.signal_command(name, operator_payload))
