"""Activities on the feature-flag store (issue #13): read a flag, apply a rollout
stage, turn a flag off. Each is idempotent (pipeline/flags/changes.py): applied twice,
a change is written and recorded once. A broken rule, an unknown flag, a hand-broken
store or a kill the stage may not undo fails at once (non-retryable, the message names
the field); anything else (a store briefly unreachable) is retried by Temporal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors_not_retried
from pipeline.flags import store_for
from pipeline.flags.base import FlagRuleBroken, FlagsInvalid, FlagStore, FlagUnknown
from pipeline.flags.changes import FlagKilled, apply_stage, kill, read_flag
from pipeline.models.flags import FlagKillRequest, FlagRef, FlagStageRequest, FlagState

log = structlog.get_logger()
PERMANENT = (FlagRuleBroken, FlagsInvalid, FlagUnknown, FlagKilled)
T = TypeVar("T")


@activity.defn(name="read_flag")
async def read_flag_state(ref: FlagRef) -> FlagState:
    return await _on_store(ref, lambda store: read_flag(store, ref.flag))


@activity.defn
async def apply_flag_stage(request: FlagStageRequest) -> FlagState:
    state = await _on_store(request.ref, lambda store: apply_stage(store, request, _now()))
    log.info("flag.stage", flag=request.ref.flag, environment=request.ref.environment, rollout=request.rollout_id,
             segments=request.setting.segments, percentage=request.setting.percentage, serving=state.serving.value)
    return state


@activity.defn
async def kill_flag(request: FlagKillRequest) -> FlagState:
    state = await _on_store(request.ref, lambda store: kill(store, request, _now()))
    log.warning("flag.killed", flag=request.ref.flag, environment=request.ref.environment, actor=request.actor,
                reason=request.reason, rollout=request.rollout_id)
    return state


async def _on_store(ref: FlagRef, operation: Callable[[FlagStore], Awaitable[T]]) -> T:
    with permanent_errors_not_retried():
        try:
            return await operation(store_for(ref.target, ref.environment))
        except PERMANENT as error:
            raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
