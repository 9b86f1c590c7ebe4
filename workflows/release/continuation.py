"""Continue-as-new: before its history grows long, a release goes on in a new run
that carries everything it needs."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pipeline.models import Continuation, ReleaseRequest, Slot


CONTINUE_AS_NEW_EVENTS = 8_000
"""History length at which a release continues as new, below Temporal's 10,240-event
warning and far below the 51,200 at which the server would end it with its canary live."""


class ContinuingAsNew:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _continue_if_history_long(self) -> None:
        """Before the history grows past what the server allows, go on in a new run
        that carries everything the release needs. Never while stopping (the rollback
        comes first) or while an update is being answered."""
        info = workflow.info()
        if info.get_current_history_length() < CONTINUE_AS_NEW_EVENTS and not info.is_continue_as_new_suggested():
            return
        if not self._may_continue():
            return
        await self._drain_notifications()
        if not self._may_continue():  # a stop that arrived while deliveries drained comes first
            return
        self._note(f"history at {info.get_current_history_length()} events: continuing in a new run")
        carried = Continuation(
            request=self._request,
            status=self._status,
            progress=self._progress,
            touched=sorted(self._touched),
            memory=self._memory,
            cursor=self._cursor,
            analysed_at=self._analysed_at,
            traffic_sequence=self._traffic_sequence,
            notifications=self._notifications,
            lock_guarded=self._lock_guarded,
            before_cursor=self._before_cursor,
        )
        self._status.continued_runs += 1
        self._continuing = True
        workflow.continue_as_new(args=[self._request.model_dump(mode="json"), carried.model_dump(mode="json")])

    def _may_continue(self) -> bool:
        return self._stop is None and workflow.all_handlers_finished()

    def _resume_if_continued(self, inputs: tuple[Any, ...]) -> ReleaseRequest | None:
        """A continued run (and only one: the server marks it) resumes from what its
        predecessor carried, in `__init__` (workflow.init): signals and updates that
        arrived as the run continued are handled in its first activation, before `run`
        starts, and must act on the carried state, not be overwritten by it (a kill
        switch or an approval would be lost)."""
        if len(inputs) == 2 and workflow.info().continued_run_id is not None:
            return self._resume(Continuation.model_validate(inputs[1]))
        return None

    def _resume(self, carried: Continuation) -> ReleaseRequest:
        self._continued = True
        self._request = carried.request  # an approval in the first activation needs it (else "not started")
        self._status = carried.status
        self._progress = carried.progress
        self._touched = set(carried.touched)
        self._memory = carried.memory
        self._cursor = carried.cursor
        self._analysed_at = carried.analysed_at
        self._traffic_sequence = carried.traffic_sequence
        self._notifications = carried.notifications
        self._lock_guarded = carried.lock_guarded
        self._before_cursor = carried.before_cursor
        self._canary_may_get_traffic = Slot.CANARY in self._touched or self._progress.promoted
        self._note(f"continued from run {workflow.info().continued_run_id}")
        return carried.request
