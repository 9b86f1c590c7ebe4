"""Feature flags a release ships dark (`ReleaseRequest.flags`, issue #13): once the
release is promoted (and baked), each flag's rollout starts as a child
FeatureRolloutWorkflow, left running when the release ends; a release that rolls back
turns its flags off first, so no user sees a feature of the version being taken away.

Behind the `release-flags` patch, asked only by releases that ship flags: a release
without them emits exactly the commands it did before."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import kill_flag
    from pipeline.decisions.flags import shipped_rollouts
    from pipeline.models.flags import FeatureRolloutRequest, FeatureRolloutResult, FlagKillRequest, FlagRef

from workflows.release.calls import ROLLBACK_RETRIES, activity_options, cause

RELEASE_FLAGS_PATCH = "release-flags"
ROLLOUT_WORKFLOW = "FeatureRolloutWorkflow"
TIMEOUT = timedelta(seconds=30)


def flag_rollout_id(release_id: str, flag: str) -> str:
    return f"{release_id}-flag-{flag}"


class ShippedFlags:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _ships_flags(self) -> bool:
        return bool(self._request.flags) and self._patched(RELEASE_FLAGS_PATCH)

    def _flag_rollouts(self) -> list[FeatureRolloutRequest]:
        release_id = self._status.release_id
        return [rollout.model_copy(update={"release_id": release_id})
                for rollout in shipped_rollouts(self._request.flags, self._request.service, self._request.target)]

    async def _start_flag_rollouts(self) -> None:
        """After promotion: one rollout per shipped flag, each steered on its own from here on."""
        if not self._ships_flags():
            return
        for rollout in self._flag_rollouts():
            rollout_id = flag_rollout_id(self._status.release_id, rollout.flag)
            await workflow.start_child_workflow(
                ROLLOUT_WORKFLOW, rollout, id=rollout_id, result_type=FeatureRolloutResult,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"flag {rollout.flag} of {self._request.service} {self._request.version}",
            )
            self._note(f"flag {rollout.flag}: rollout {rollout_id} started")

    async def _turn_flags_off(self, reason: str) -> None:
        """Before a rollback moves traffic: every shipped flag off, recorded for this release.
        A flag the store does not know yet was never on: nothing to do."""
        if not (self._touched or self._progress.promoted) or not self._ships_flags():
            return  # a release refused before it changed anything changes nothing
        for rollout in self._flag_rollouts():
            request = FlagKillRequest(
                ref=FlagRef(flag=rollout.flag, environment=rollout.environment, target=rollout.target),
                actor=f"release {self._status.release_id}", reason=f"release rolled back: {reason}"[:2000],
                release_id=self._status.release_id,
            )
            try:
                await workflow.execute_activity(
                    kill_flag, request, **activity_options(f"turn flag {rollout.flag} off", TIMEOUT, ROLLBACK_RETRIES))
                self._note(f"flag {rollout.flag} turned off")
            except ActivityError as error:
                self._note(f"flag {rollout.flag} not turned off: {cause(error)}")

