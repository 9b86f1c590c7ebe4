"""Changes to a flag store: read, check the rules, write, record. Shared by the
activities (activities/flags.py) and `releasectl flags` (pipeline/flags_cli.py), so a
flag turned off from the command line is recorded exactly as one turned off by a rollout.

Each change is a read-modify-write against the document read: another writer in
between makes the store refuse the write (WriteConflict), and the change is computed
again on the new document. Applying the same change twice changes nothing the second
time, so activities can be retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from pipeline.decisions.flags import setting_problems, stage_refusal, variant_problems
from pipeline.flags.base import FlagRuleBroken, FlagStore, FlagUnknown, Snapshot, WriteConflict
from pipeline.flags.document import flag_definition, flag_state, revision, rollout_sequence, with_flag
from pipeline.models.flags import FlagChange, FlagKillRequest, FlagSetting, FlagStageRequest, FlagState

log = structlog.get_logger()

WRITE_ATTEMPTS = 5


class FlagKilled(Exception):
    """A rollout stage refused: the flag was turned off after the rollout started."""


async def read_flag(store: FlagStore, name: str) -> FlagState:
    return flag_state((await store.read()).document, name, store.environment)


async def apply_stage(store: FlagStore, request: FlagStageRequest, now: str) -> FlagState:
    """Serve `request.setting` (creating the flag dark first if it is new)."""
    return await _changing(store, request.ref.flag, lambda snapshot: _stage(snapshot, store, request, now))


async def kill(store: FlagStore, request: FlagKillRequest, now: str) -> FlagState:
    """The flag off for everyone, recorded as killed; a flag already killed is left as it is."""
    return await _changing(store, request.ref.flag, lambda snapshot: _kill(snapshot, store, request, now))


Planned = tuple[dict[str, Any], FlagChange] | None
"""A document to write and its audit entry, or None when the store already says so."""


async def _changing(store: FlagStore, name: str, plan: Callable[[Snapshot], Planned]) -> FlagState:
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        snapshot = await store.read()
        planned = plan(snapshot)
        if planned is None:
            return flag_state(snapshot.document, name, store.environment)
        document, change = planned
        try:
            await store.write(snapshot, document, change)
        except WriteConflict:
            if attempt == WRITE_ATTEMPTS:
                raise
            continue
        log.info("flag.changed", flag=name, environment=store.environment, action=change.action,
                 actor=change.actor, serving=change.serving.value, revision=change.revision, store=store.location)
        return flag_state(document, name, store.environment)
    raise AssertionError("unreachable")


def _stage(snapshot: Snapshot, store: FlagStore, request: FlagStageRequest, now: str) -> Planned:
    name = request.ref.flag
    state = flag_state(snapshot.document, name, store.environment)
    problems = variant_problems(state, request.variants, request.on_variant, request.off_variant)
    problems += setting_problems(request.setting)
    if problems:
        raise FlagRuleBroken("; ".join(problems))
    refusal = stage_refusal(state, request)
    if refusal:
        raise FlagKilled(refusal)
    applied = rollout_sequence(snapshot.document, name, request.rollout_id)
    if applied is not None and (applied > request.sequence or (applied == request.sequence and not state.killed)):
        return None  # this stage (or a later one of the same rollout) is already in place
    new_revision = revision(snapshot.document) + 1
    metadata = {
        "revision": new_revision, "changedBy": request.actor, "changedAt": now, "rolloutId": request.rollout_id,
        "releaseId": request.release_id, "sequence": request.sequence, "killed": False,
    }
    variants = request.variants if request.variants is not None else state.variants
    definition = flag_definition(variants, request.on_variant, request.off_variant, request.setting, metadata)
    document = with_flag(snapshot.document, name, definition, new_revision)
    change = _change(state, document, request.actor, request.reason, now, request.rollout_id, request.release_id)
    return document, change.model_copy(update={"action": "stage" if state.exists else "define"})


def _kill(snapshot: Snapshot, store: FlagStore, request: FlagKillRequest, now: str) -> Planned:
    name = request.ref.flag
    state = flag_state(snapshot.document, name, store.environment)
    if not state.exists:
        raise FlagUnknown(f"flag: {name!r} is not defined in the {store.environment} store ({store.location})")
    if state.killed:
        return None
    new_revision = revision(snapshot.document) + 1
    off = state.off_variant or state.default_variant or next(iter(state.variants))
    metadata = {
        "revision": new_revision, "changedBy": request.actor, "changedAt": now, "rolloutId": request.rollout_id,
        "releaseId": request.release_id, "killed": True, "killedRevision": new_revision, "killReason": request.reason,
    }
    definition = flag_definition(state.variants, state.on_variant or off, off, FlagSetting(), metadata)
    document = with_flag(snapshot.document, name, definition, new_revision)
    return document, _change(state, document, request.actor, request.reason, now, request.rollout_id,
                             request.release_id).model_copy(update={"action": "kill"})


def _change(before: FlagState, document: dict[str, Any], actor: str, reason: str, now: str,
            rollout_id: str | None, release_id: str | None) -> FlagChange:
    after = flag_state(document, before.flag, before.environment)
    return FlagChange(
        at=now, actor=actor, action="stage", flag=before.flag, environment=before.environment, reason=reason,
        revision=after.revision, release_id=release_id, rollout_id=rollout_id,
        before=before.setting if before.exists else None, after=after.setting, serving=after.serving,
    )

