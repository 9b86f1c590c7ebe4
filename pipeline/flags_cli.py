"""`releasectl flags`: read and kill feature flags in a store, and steer their rollouts.

  releasectl flags list [--env production] [--target local]
  releasectl flags show new-gallery-layout [--json]
  releasectl flags off new-gallery-layout --reason "errors on the new layout" --actor ana
  releasectl flags history new-gallery-layout
  releasectl flags rollout start rollout.json            (a FeatureRolloutRequest; prints its id)
  releasectl flags rollout status|watch ID
  releasectl flags rollout approve ID --stage canary|production --approver alice
  releasectl flags rollout reject ID --stage production --approver alice [--comment C]
  releasectl flags rollout kill ID --reason R --actor A

`list`, `show`, `off` and `history` use the store directly (the flags file of the local
environment PIPELINE_LOCAL_STATE_DIR names, or the ConfigMap of the cluster
PIPELINE_K8S_* names), not Temporal: `off` works with Temporal and the worker down, and
a rollout of the flag sees it at its next step and ends rolled back.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle

from pipeline import cli
from pipeline.cli_input import CliError, approval_payload, kill_payload, local_user
from pipeline.decisions.flags import parse_rollout
from pipeline.decisions.validation import describe_problems
from pipeline.errors import TargetError
from pipeline.flags import store_for
from pipeline.flags.base import FlagRuleBroken, FlagsInvalid, FlagStore, FlagUnknown
from pipeline.flags.changes import kill, read_flag
from pipeline.flags.document import flag_names, flag_state
from pipeline.models.flag_rollout import FeatureRolloutStatus
from pipeline.models.flags import FeatureRolloutResult, FlagKillRequest, FlagOutcome, FlagRef, FlagState
from pipeline.temporal import TemporalSettings

ROLLOUT_WORKFLOW = "FeatureRolloutWorkflow"
STORE_ERRORS = (FlagsInvalid, FlagUnknown, FlagRuleBroken, TargetError, ValueError)


def add_flags(commands: argparse._SubParsersAction) -> None:
    flags = commands.add_parser("flags", help="feature flags: list, show, off, history, rollout (releasectl flags --help)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = flags.add_subparsers(dest="flags_command", required=True, metavar="COMMAND")
    where = store_arguments()
    verbs.add_parser("list", parents=[where], help="every flag of the store and whom it serves").set_defaults(
        handler=on_store(list_flags))
    show = verbs.add_parser("show", parents=[where], help="one flag: its state and its flagd definition")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="the flag's state as JSON")
    show.set_defaults(handler=on_store(show_flag))
    off = verbs.add_parser("off", parents=[where], help="turn a flag off for everyone now, straight in the store")
    off.add_argument("name")
    off.add_argument("--reason", required=True)
    off.add_argument("--actor", default=local_user(), help="default: the local user")
    off.set_defaults(handler=on_store(turn_off))
    history = verbs.add_parser("history", parents=[where], help="who changed a flag, when, why")
    history.add_argument("name")
    history.set_defaults(handler=on_store(show_history))
    add_rollout(verbs)


def store_arguments() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--env", default="production", help="the environment whose flags (default: production)")
    where.add_argument("--target", default="local", help="local (flags file) or kubernetes (ConfigMap)")
    return where


def on_store(command: Callable[[argparse.Namespace, FlagStore], Awaitable[int]]) -> Callable[..., Awaitable[int]]:
    """A command on the flag store: no Temporal involved; store problems are one error line."""

    async def run(args: argparse.Namespace, settings: TemporalSettings) -> int:
        try:
            FlagRef(flag="x", environment=args.env, target=args.target)
        except ValidationError as error:
            raise CliError("; ".join(describe_problems(error))) from None
        try:
            return await command(args, store_for(args.target, args.env))
        except STORE_ERRORS as error:
            raise CliError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None

    return run


async def list_flags(args: argparse.Namespace, store: FlagStore) -> int:
    document = (await store.read()).document
    states = [flag_state(document, name, store.environment) for name in flag_names(document)]
    if not states:
        print(f"no flags in {store.location}")
        return 0
    rows = [("FLAG", "SERVING", "WHO", "ON/OFF", "REVISION", "CHANGED BY")]
    rows += [(s.flag, "killed" if s.killed else s.serving.value, who(s), f"{s.on_variant}/{s.off_variant}",
              str(s.revision), s.changed_by or "-") for s in states]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


async def show_flag(args: argparse.Namespace, store: FlagStore) -> int:
    snapshot = await store.read()
    state = flag_state(snapshot.document, args.name, store.environment)
    if not state.exists:
        raise FlagUnknown(f"flag: {args.name!r} is not defined in {store.location}")
    if args.json:
        print(state.model_dump_json(indent=2))
        return 0
    print(f"{state.flag} in {state.environment} ({store.location})")
    print(f"  serving: {'killed: ' + (state.kill_reason or '') if state.killed else state.serving.value} ({who(state)})")
    print(f"  variants: {json.dumps(state.variants)}; on {state.on_variant!r}, off {state.off_variant!r}")
    print(f"  revision {state.revision}, changed by {state.changed_by or '-'} at {state.changed_at or '-'}")
    print(json.dumps(snapshot.document["flags"][args.name], indent=2))
    return 0


async def turn_off(args: argparse.Namespace, store: FlagStore) -> int:
    before = await read_flag(store, args.name)
    request = FlagKillRequest(ref=FlagRef(flag=args.name, environment=args.env, target=args.target),
                              actor=args.actor, reason=args.reason)
    after = await kill(store, request, datetime.now(UTC).isoformat(timespec="seconds"))
    if before.killed:
        print(f"{args.name} was already off (turned off by {before.changed_by}: {before.kill_reason})")
    else:
        print(f"{args.name} is off for everyone in {store.environment} (was {who(before)}); "
              f"revision {after.revision}, recorded for {args.actor}")
    return 0


async def show_history(args: argparse.Namespace, store: FlagStore) -> int:
    changes = await store.history(args.name)
    if not changes:
        print(f"no recorded changes of {args.name} in {store.location}")
    for change in changes:
        source = change.release_id or change.rollout_id
        print(f"{change.at}  r{change.revision}  {change.action:<6} {change.serving.value:<7} "
              f"{who_of(change.after) if change.after else '-':<40} by {change.actor}"
              + (f" ({source})" if source else "") + (f": {change.reason}" if change.reason else ""))
    return 0


def who(state: FlagState) -> str:
    return "nobody" if state.killed else who_of(state.setting, state.serving.value)


def who_of(setting: Any, serving: str | None = None) -> str:
    if serving == "on" or setting.percentage >= 100:
        return "everyone"
    parts = [", ".join(setting.segments)] if setting.segments else []
    if setting.percentage:
        parts.append(f"{setting.percentage}% of users")
    return " + ".join(parts) or "nobody"


# --- rollouts (Temporal) ------------------------------------------------------------------------


def add_rollout(verbs: argparse._SubParsersAction) -> None:
    rollout = verbs.add_parser("rollout", help="start and steer a FeatureRolloutWorkflow")
    steps = rollout.add_subparsers(dest="rollout_command", required=True, metavar="COMMAND")
    start = steps.add_parser("start", help="validate a rollout file and start the rollout (prints its id)")
    start.add_argument("file", metavar="ROLLOUT.json")
    start.add_argument("--id", help="workflow id (default: flag-rollout-FLAG-RANDOM)")
    start.set_defaults(handler=start_rollout)
    for name, handler in (("status", rollout_status), ("watch", watch_rollout)):
        command = steps.add_parser(name, help=f"{name} of a rollout")
        command.add_argument("id")
        command.set_defaults(handler=handler)
    for name in ("approve", "reject"):
        steps.add_parser(name, parents=[cli.decision_arguments()], help=f"{name} a stage of a rollout").set_defaults(
            handler=cli.signal_command(name, approval_payload))
    kill_command = steps.add_parser("kill", help="pull the rollout's kill switch: the flag off for everyone")
    kill_command.add_argument("id")
    kill_command.add_argument("--reason", required=True)
    kill_command.add_argument("--actor", default=local_user(), help="default: the local user")
    kill_command.set_defaults(handler=cli.signal_command("kill_switch", kill_payload))


async def start_rollout(args: argparse.Namespace, settings: TemporalSettings) -> int:
    try:
        raw = json.loads(Path(args.file).read_text())
    except OSError as error:
        raise CliError(f"cannot read rollout file {args.file}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{args.file} is not valid JSON: {error}") from None
    request = parse_rollout(raw)
    rollout_id = args.id or f"flag-rollout-{request.flag}-{uuid.uuid4().hex[:6]}"
    return await cli.start_workflow(settings, ROLLOUT_WORKFLOW, request, rollout_id, "flags rollout watch")


def rollout_handle(client: Client, rollout_id: str) -> WorkflowHandle[Any, FeatureRolloutResult]:
    return client.get_workflow_handle(rollout_id, result_type=FeatureRolloutResult)


async def query_rollout(handle: WorkflowHandle) -> FeatureRolloutStatus:
    return await handle.query(cli.STATUS_QUERY, result_type=FeatureRolloutStatus, rpc_timeout=cli.QUERY_TIMEOUT)


async def rollout_status(args: argparse.Namespace, settings: TemporalSettings) -> int:
    print(render_rollout(await query_rollout(rollout_handle(await cli.client_for(settings), args.id))))
    return 0


async def watch_rollout(args: argparse.Namespace, settings: TemporalSettings) -> int:
    handle = rollout_handle(await cli.client_for(settings), args.id)
    await cli.follow(handle, lambda: query_rollout(handle), render_rollout)
    result = await handle.result()
    print(f"{result.outcome.value}: {result.reason}")
    return 0 if result.outcome is FlagOutcome.ENABLED else cli.EXIT_NOT_PROMOTED


def render_rollout(status: FeatureRolloutStatus) -> str:
    lines = [f"{status.rollout_id}: {status.flag} in {status.environment}",
             f"phase: {status.phase}; serving the on variant to {who_of(status.setting)}"]
    if status.pending_approval:
        lines.append(f"waiting for {status.pending_approval.value} approval until {status.approval_deadline}")
    if status.last_analysis:
        lines.append(f"last analysis: {status.last_analysis.verdict.value}: {status.last_analysis.summary}")
    if status.outcome:
        lines.append(f"outcome: {status.outcome.value}: {status.reason}")
    lines += ["", *status.timeline[-10:]]
    return "\n".join(lines)
