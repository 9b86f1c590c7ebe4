"""The sim target: versions "run" in an in-memory fleet inside the worker
(pipeline/sim/fleet.py) and answer requests from a model with injectable faults
(pipeline/sim/model.py); no processes, no ports. It serves demos, the scale benchmark
and `releasectl simulate`, which run the real workflow and activities against it.

Every method is idempotent like the other targets': it compares the fleet with what
is asked and only does what is missing. Nothing between reading and writing a
service's state waits on anything, so the worker's one event loop serialises changes.

The sim runs no test suites (they are processes against a URL): its preflight reports
every requested suite as missing, so a sim release asks for `"test_suites": []`.
"""

from __future__ import annotations

import structlog

from pipeline.catalog import TARGETS
from pipeline.decisions.fencing import fence_of, is_stale
from pipeline.errors import PermanentTargetError, TargetError
from pipeline.models import PreflightReport, RollbackWindow, Slot, TrafficRequest, VersionHealth
from pipeline.routers import router_for
from pipeline.routers.base import Split
from pipeline.sim.fleet import PREVIOUS, Fleet, ServiceFleet, SimSlot, worker_fleet
from pipeline.sim.model import RunningVersion
from pipeline.targets.base import Progress, no_progress, split_of

log = structlog.get_logger()

READY_TIMEOUT_SECONDS = 60.0
"""As the local target's: a version whose readiness is delayed longer never gets ready."""


class SimTarget:
    name = "sim"

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self._router = router_for(TARGETS["sim"].router, fleet)

    @classmethod
    def from_env(cls) -> SimTarget:
        return cls(worker_fleet())

    async def preflight(self, service: str, suites: list[str]) -> PreflightReport:
        return PreflightReport(stable_version=await self.stable_version(service), missing_suites=list(suites))

    async def deploy(self, service: str, slot: Slot, version: str, env: dict[str, str]) -> bool:
        if slot not in (Slot.STAGING, Slot.CANARY):
            raise PermanentTargetError(f"deploy runs a version in staging or canary, not {slot}")
        try:
            faults = self.fleet.scenario.faults_of(version, env)
        except ValueError as error:
            raise PermanentTargetError(f"the sim target refuses the release's env: {error}") from None
        state = self.fleet.service(service)
        current = state.slots.get(slot)
        if current and current.version == version and current.env == env and not self._crashed(current):
            return False
        state.slots[slot] = SimSlot(RunningVersion(version, faults, started_at=self.fleet.now()), dict(env))
        log.info("sim.started", service=service, slot=slot, version=version, faults=faults)
        return True

    async def wait_ready(self, service: str, slot: Slot, version: str, progress: Progress) -> None:
        """Ready at once, or never: the activity cannot wait for release time to pass."""
        entry = self._slot(service, slot)
        if entry.version != version:
            raise PermanentTargetError(f"{slot} of {service} runs {entry.version}, not {version}")
        if self._crashed(entry):
            raise PermanentTargetError(f"{service} {version} in {slot} crashed")
        if entry.running.faults.ready_delay_seconds > READY_TIMEOUT_SECONDS:
            raise TargetError(f"{service} {version} in {slot} not ready within {READY_TIMEOUT_SECONDS:g}s")

    def endpoint(self, service: str, slot: Slot) -> str:
        self._slot(service, slot)
        return f"sim://{service}/{slot}"

    async def set_traffic(self, request: TrafficRequest) -> bool:
        state = self.fleet.service(request.ref.service)
        if is_stale(state.traffic_fence, request):
            log.warning("traffic.stale_change_ignored", service=request.ref.service, sequence=request.sequence)
            return False
        if Slot.CANARY not in state.slots and (request.canary_weight > 0 or request.segments_to_canary):
            raise PermanentTargetError(f"{request.ref.service} has no canary to send traffic to")
        changed = await self._router.apply(request.ref.service, split_of(request))
        state.traffic_fence = fence_of(request)
        return changed

    async def stop(self, service: str, slot: Slot) -> bool:
        state = self.fleet.service(service)
        if state.slots.pop(slot, None) is None:
            return False
        if slot == Slot.CANARY:
            await self._router.apply(service, Split())
        return True

    async def promote(
        self, service: str, progress: Progress = no_progress, *, release_id: str = "", keep: int = 2
    ) -> str | None:
        state = self.fleet.service(service)
        canary, stable = state.slots.get(Slot.CANARY), state.slots.get(Slot.STABLE)
        if canary is None:
            return self._already_promoted(service, state)
        if self._crashed(canary):
            raise PermanentTargetError(f"the canary of {service} ({canary.version}) crashed")
        state.record_promotion(canary, release_id, keep)
        state.slots.pop(PREVIOUS, None)
        if stable:
            state.slots[PREVIOUS] = stable
        state.slots[Slot.STABLE] = state.slots.pop(Slot.CANARY)
        await self._router.apply(service, Split())
        log.info("canary.promoted", service=service, version=canary.version, previous=stable.version if stable else None)
        return stable.version if stable else None

    async def revert(self, service: str, version: str, progress: Progress = no_progress) -> bool:
        """Swaps the stable version and the warm previous one; the window changes as the
        local target's does (the version reverted from leaves it)."""
        state = self.fleet.service(service)
        stable, previous = state.slots.get(Slot.STABLE), state.slots.get(PREVIOUS)
        if stable and stable.version == version:
            return False
        if previous is None or previous.version != version or self._crashed(previous):
            raise PermanentTargetError(f"{version} of {service} is not warm: the sim reverts only to the previous version")
        state.record_revert(previous)
        state.slots[Slot.STABLE] = state.slots.pop(PREVIOUS)
        if stable:
            state.slots[PREVIOUS] = stable
        await self._router.apply(service, Split())
        log.info("version.reverted", service=service, version=version, previous=stable.version if stable else None)
        return True

    async def rollback_window(self, service: str) -> RollbackWindow:
        state = self.fleet.service(service)
        previous = state.slots.get(PREVIOUS)
        return state.window(previous.version if previous and not self._crashed(previous) else None)

    async def health(self, service: str, version: str) -> VersionHealth:
        state = self.fleet.service(service)
        running = [(slot, state.slots[slot]) for slot in (Slot.STABLE, PREVIOUS, Slot.CANARY)
                   if slot in state.slots and state.slots[slot].version == version]
        if not running:
            return VersionHealth(version=version, healthy=False, detail="not running")
        slot, entry = running[0]
        age = self.fleet.age(entry.running)
        if entry.running.faults.crashed_at(age):
            return VersionHealth(version=version, healthy=False, detail=f"crashed in {slot}")
        if not entry.running.faults.ready_at(age):
            return VersionHealth(version=version, healthy=False, detail=f"not ready yet in {slot}")
        return VersionHealth(version=version, healthy=True, detail=f"ready in {slot}")

    async def retire(self, service: str, version: str) -> bool:
        state = self.fleet.service(service)
        if state.version_in(PREVIOUS) != version:
            return False
        del state.slots[PREVIOUS]
        log.info("version.retired", service=service, version=version)
        return True

    async def stable_version(self, service: str) -> str | None:
        return self.fleet.service(service).version_in(Slot.STABLE)

    # --- helpers -------------------------------------------------------------------------

    def _slot(self, service: str, slot: Slot) -> SimSlot:
        entry = self.fleet.service(service).slots.get(slot)
        if entry is None:
            raise PermanentTargetError(f"nothing runs in {slot} of {service}")
        return entry

    def _crashed(self, entry: SimSlot) -> bool:
        return entry.running.faults.crashed_at(self.fleet.age(entry.running))

    def _already_promoted(self, service: str, state: ServiceFleet) -> str | None:
        """promote() retried after it succeeded: report what the first call reported."""
        if Slot.STABLE not in state.slots:
            raise PermanentTargetError(f"{service} has no canary to promote")
        return state.version_in(PREVIOUS)
