"""Which generation of commands a release follows, decided once per run.

A release that changed the commands it emits did so behind a patch, so that releases
started by older code replay as they ran. Each patch costs a new release two history
events (its marker, and the `TemporalChangeVersion` search attribute the SDK upserts
with it), and five such patches had piled up. A release started by this code records
one marker, `LIGHT_PATCH`, which stands for every patch before it; a release started
before it replays with the patches it recorded, one by one.

Under `LIGHT_PATCH` a release is also lighter on Temporal: short reads run as local
activities (`ActivityCalls._quick_read`), analyses keep a fixed cadence, and a zero
wait makes no timer.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.release.bake import BAKE_PATCH
from workflows.release.flags import RELEASE_FLAGS_PATCH
from workflows.release.locking import GUARDED_LOCK_PATCH, LOCK_END_PATCH
from workflows.release.migration import STAGING_FOLLOWS_PATCH
from workflows.release.preparation import GATES_PATCH

LIGHT_PATCH = "light-release"

BEFORE_LIGHT = frozenset(
    {BAKE_PATCH, GATES_PATCH, GUARDED_LOCK_PATCH, LOCK_END_PATCH, RELEASE_FLAGS_PATCH, STAGING_FOLLOWS_PATCH}
)
"""The patches `LIGHT_PATCH` stands for. A patch added after it is asked on its own."""


class Patches:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    _light: bool | None = None

    def _is_light(self) -> bool:
        """Whether this run follows `LIGHT_PATCH`. Asked first at the start of `run`, so
        the marker of a new release lands in its first workflow task."""
        if self._light is None:
            self._light = workflow.patched(LIGHT_PATCH)
        return self._light

    def _patched(self, patch: str) -> bool:
        """`workflow.patched(patch)`; a light release answers it without a marker for a
        patch that came before `LIGHT_PATCH`."""
        if patch in BEFORE_LIGHT and self._is_light():
            return True
        return workflow.patched(patch)
