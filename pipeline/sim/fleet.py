"""The sim target's state: an in-memory fleet inside the worker process. Per service,
the version in each slot (staging, canary, stable, and `previous`: the stable version
a promote or revert replaced, warm until retired), the routing, the traffic fence and
the promotion history (pipeline/targets/history.py), like the other targets keep.

Time is the release's own. An activity runs in real time, but the server stamps each
attempt with its clock, which is the workflow's: on the time-skipping test server it
jumps with every skipped timer. So a version's age, and the window an analysis reads,
are measured in the time the workflow sees (`release_now`), and a 30-minute canary
ages its version 30 minutes in a second of wall time. Outside an activity (unit tests,
a demo) the clock is the wall clock, or one the caller injects.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from temporalio import activity

from pipeline.models import Observation, PromotedVersion, RollbackWindow, Slot, TrafficFence
from pipeline.sim.model import Routing, RunningVersion
from pipeline.sim.scenario import Scenario
from pipeline.targets import history as promotions
from pipeline.targets.history import History

PREVIOUS = "previous"

Clock = Callable[[], float]
"""Seconds since the epoch, in release time."""


def release_now() -> float:
    """The server's time of the current activity attempt (the workflow's clock), or the
    wall clock outside an activity."""
    if activity.in_activity():
        return activity.info().started_time.timestamp()
    return time.time()


@dataclass
class SimSlot:
    running: RunningVersion
    env: dict[str, str]
    """The release's env as requested, recorded in the promotion history."""

    @property
    def version(self) -> str:
        return self.running.version


@dataclass
class ServiceFleet:
    slots: dict[str, SimSlot] = field(default_factory=dict)
    routing: Routing = field(default_factory=Routing)
    traffic_fence: TrafficFence | None = None
    history: History = field(default_factory=History)

    def version_in(self, slot: str) -> str | None:
        entry = self.slots.get(slot)
        return entry.version if entry else None

    def running(self, slot: str) -> RunningVersion | None:
        entry = self.slots.get(slot)
        return entry.running if entry else None

    def record_promotion(self, canary: SimSlot, release_id: str, keep: int) -> None:
        """Record that the canary becomes stable; call it before the slots change."""
        self.history = promotions.promoted(
            self.history, canary.version, canary.env, release_id, self.version_in(Slot.STABLE), keep
        )

    def record_revert(self, previous: SimSlot) -> None:
        """Record that the warm previous version becomes stable again; call it before
        the slots change. Its entry keeps the env it runs with, even when it had left
        the window (a revert that undoes a revert)."""
        history = promotions.reverted(self.history, previous.version, self.version_in(Slot.STABLE))
        front = history.versions[0]
        history.versions[0] = front if front.env else front.model_copy(update={"env": previous.env})
        self.history = history

    def window(self, warm: str | None) -> RollbackWindow:
        return promotions.window(self.history, self.version_in(Slot.STABLE), warm)


@dataclass
class Fleet:
    """Every simulated service of this worker, the scenario they run under, and the clock."""

    scenario: Scenario = field(default_factory=Scenario)
    clock: Clock = release_now
    services: dict[str, ServiceFleet] = field(default_factory=dict)
    recorded: dict[str, deque[Observation]] = field(default_factory=dict)
    """Per service, metric windows a past release read, served back in order instead of
    the model's draws (`releasectl simulate --from-history`)."""

    def reset(self, scenario: Scenario, recorded: dict[str, list[Observation]] | None = None) -> None:
        """Start over under `scenario`, without any service: a simulation owns the fleet
        of the worker it runs in."""
        self.scenario, self.services = scenario, {}
        self.recorded = {service: deque(windows) for service, windows in (recorded or {}).items()}

    def replayed(self, service: str) -> Observation | None:
        """The next recorded window of `service`; once they run out, the last one again."""
        windows = self.recorded.get(service)
        if not windows:
            return None
        return windows.popleft() if len(windows) > 1 else windows[0]

    def service(self, name: str) -> ServiceFleet:
        return self.services.setdefault(name, ServiceFleet())

    def install(self, service: str, version: str, env: dict[str, str] | None = None) -> None:
        """Make `version` the stable version of `service`, as if promoted before the
        sim started: what a release finds in production."""
        env = dict(env or {})
        running = RunningVersion(version, self.scenario.faults_of(version, env), started_at=self.now())
        state = self.service(service)
        state.slots[Slot.STABLE] = SimSlot(running, env)
        state.history = History(versions=[PromotedVersion(version=version, env=env)])

    def now(self) -> float:
        return self.clock()

    def age(self, running: RunningVersion) -> float:
        return self.now() - running.started_at


@cache
def worker_fleet() -> Fleet:
    """The fleet of this worker process, shared by its sim target and metrics provider."""
    return Fleet()
