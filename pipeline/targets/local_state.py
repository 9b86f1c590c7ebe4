"""What the local target records of a service: one JSON file per service in the
state directory, naming the process in each slot (staging, canary, stable, and
`previous`: the stable version a promote or revert replaced, warm until retired), the
routing last applied, the traffic fence, and the versions that were stable (the
rollback window).

Every field added since the first release has a default, so a state file written by
an older worker still loads.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from pipeline.errors import PermanentTargetError
from pipeline.local.env import is_ours, write_atomically
from pipeline.models import SERVICE_PATTERN, PromotedVersion, RollbackWindow, Slot, TrafficFence
from pipeline.routers.base import Split
from pipeline.targets import history as promotions
from pipeline.targets.history import History

PREVIOUS = "previous"


class SlotProcess(BaseModel):
    pid: int
    port: int
    version: str
    instance_id: str
    env: dict[str, str] = Field(default_factory=dict)
    """The release's env as requested: references (`secret://NAME`), not secret values."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        return is_ours(self.pid, self.instance_id)

    def as_promoted(self) -> PromotedVersion:
        """An entry for a version that was stable before history was recorded."""
        return PromotedVersion(version=self.version, env=self.env)


class ServiceState(BaseModel):
    slots: dict[str, SlotProcess] = Field(default_factory=dict)
    traffic_fence: TrafficFence | None = None
    routing: Split | None = None
    """The split last applied: a process it sends traffic to is taken out of it before it stops."""
    history: History = Field(default_factory=History)
    """The versions that were stable: the rollback window (pipeline/targets/history.py)."""

    def record_promotion(self, canary: SlotProcess, release_id: str, keep: int) -> None:
        """Record that the canary becomes stable; call it before the slots change."""
        self.history = promotions.promoted(
            self._known_history(), canary.version, canary.env, release_id, self._stable_version(), keep
        )

    def record_revert(self, previous: SlotProcess) -> None:
        """Record that the warm previous version becomes stable again; call it before
        the slots change. Its entry keeps the env it runs with, even when it had left the
        window (a revert that undoes a revert)."""
        history = promotions.reverted(self._known_history(), previous.version, self._stable_version())
        front = history.versions[0]
        history.versions[0] = front if front.env else front.model_copy(update={"env": previous.env})
        self.history = history

    def window(self) -> RollbackWindow:
        previous = self.slots.get(PREVIOUS)
        warm = previous.version if previous and previous.is_running() else None
        return promotions.window(self._known_history(), self._stable_version(), warm)

    def _stable_version(self) -> str | None:
        stable = self.slots.get(Slot.STABLE)
        return stable.version if stable else None

    def _known_history(self) -> History:
        """The history, or for a service promoted before it was recorded, what its
        stable and previous slots still tell (with their env), so that its window is
        not empty."""
        if self.history.versions:
            return self.history
        slots = (self.slots.get(Slot.STABLE), self.slots.get(PREVIOUS))
        return History(versions=[process.as_promoted() for process in slots if process], older=self.history.older)


class StateFiles:
    """The state directory's service files, written atomically."""

    def __init__(self, directory: Path):
        self._directory = directory

    def load(self, service: str) -> ServiceState:
        try:
            return ServiceState.model_validate_json(self._path(service).read_text())
        except FileNotFoundError:
            return ServiceState()
        except ValidationError as error:
            raise PermanentTargetError(f"state of {service} is corrupt: {error}") from error

    def save(self, service: str, state: ServiceState) -> None:
        write_atomically(self._path(service), state.model_dump_json(indent=2))

    def _path(self, service: str) -> Path:
        if not re.match(SERVICE_PATTERN, service):
            raise PermanentTargetError(f"{service!r} is not a valid service name")
        return self._directory / f"{service}.json"
