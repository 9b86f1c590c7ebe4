"""The local deploy target: each version runs as a detached process of the sample
gallery service, and Traefik splits traffic between the stable and canary ones.

State is one JSON file per service (pipeline/targets/local_state.py): the process
in each slot (staging, canary, stable, and `previous`: the stable version a promote or
revert replaced, warm until retired), the routing, and the rollback window. Every
method is safe to retry after a crash at any point: it compares the state and the
live processes with what is asked and only does what is missing. A process is only
stopped while /proc shows it still runs with its instance id, so a recycled pid is
never signalled; and only after it was taken out of the router and drained
(pipeline/targets/local_handover.py), so that no request fails on the way.

A service process gets a minimal base environment (BASE_VARIABLES, LC_*), the
release's env checked by env_problems, and its `secret://NAME` references read from
the worker's PIPELINE_SECRET_NAME; never the rest of the worker's environment, which
holds the worker's own credentials; a version that depends on another service also
gets the router's URL to reach it (pipeline/gallery/dependency.py). When the worker
has a database configured for the service (pipeline/database.py), the process also
gets GALLERY_DATABASE_URL (the staging slot the staging database, every other slot the
production one) and GALLERY_FILES_DIR. Every process gets its feature flags file in
FLAGD_FILE (the staging slot the staging flags, every other slot the production ones)
and where to register for scraping (pipeline/gallery/scrape.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import structlog

from pipeline.catalog import TARGETS
from pipeline.database import database_url, service_database
from pipeline.decisions.fencing import fence_of, is_stale
from pipeline.decisions.service_env import env_problems, secret_name, worker_secret_variable
from pipeline.errors import PermanentTargetError
from pipeline.flags.local_file import flags_file
from pipeline.gallery.flags import FLAGS_FILE_VARIABLE
from pipeline.gallery.scrape import SCRAPE_DIR_VARIABLE, SERVICE_VARIABLE
from pipeline.gallery.dependency import router_environment
from pipeline.http import http_client
from pipeline.local.env import LocalEnvironment, launch_detached, processes_marked, terminate
from pipeline.local.prometheus import scrape_targets_dir
from pipeline.models import PreflightReport, RollbackWindow, Slot, TrafficRequest, VersionHealth
from pipeline.routers import router_for
from pipeline.routers.base import Split, TrafficRouter
from pipeline.suites import load_catalog, missing_suites
from pipeline.targets.base import Progress, no_progress, split_of
from pipeline.targets.local_handover import STOP_GRACE_SECONDS, sends_traffic_to, wait_drained, without
from pipeline.targets.local_state import PREVIOUS, ServiceState, SlotProcess, StateFiles

log = structlog.get_logger()

ROUTER = TARGETS["local"].router
"""The local target routes with Traefik, in the local environment."""
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.5
HEALTH_TIMEOUT_SECONDS = 2.0
LOG_TAIL_LINES = 5
BASE_VARIABLES = ("PATH", "LANG", "TZ")
"""Taken from the worker for every service process, with its LC_* variables. The sample
service needs nothing more to import pipeline.gallery.app: this venv's interpreter finds
the installed package on its own."""


class LocalTarget:
    name = "local"

    def __init__(
        self,
        env: LocalEnvironment | None = None,
        router: TrafficRouter | None = None,
        ready_timeout_seconds: float = READY_TIMEOUT_SECONDS,
    ):
        self.env = env or LocalEnvironment.from_env()
        self._router = router or router_for(ROUTER, self.env)
        self._ready_timeout_seconds = ready_timeout_seconds
        self._states = StateFiles(self.env.services_dir)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @classmethod
    def from_env(cls) -> LocalTarget:
        return cls(LocalEnvironment.from_env())

    async def preflight(self, service: str, suites: list[str]) -> PreflightReport:
        await self._router.check(service)
        try:
            missing = missing_suites(service, suites, load_catalog())
        except (OSError, ValueError) as error:
            raise PermanentTargetError(f"the worker's suite catalog is unreadable: {error}") from error
        return PreflightReport(stable_version=await self.stable_version(service), missing_suites=missing)

    async def deploy(self, service: str, slot: Slot, version: str, env: dict[str, str]) -> bool:
        if slot not in (Slot.STAGING, Slot.CANARY):
            raise PermanentTargetError(f"deploy runs a version in staging or canary, not {slot}")
        if problems := env_problems(env):
            raise PermanentTargetError(f"the local target refuses the release's env: {'; '.join(problems)}")
        service_env = {**_base_environment(), **_resolve_secrets(env), **_database_environment(service, slot),
                       **router_environment(env, self.env.http_url), **self._flags_environment(service, slot)}
        async with self._locks[service]:
            state = self._states.load(service)
            current = state.slots.get(slot)
            if current and current.version == version and current.env == env and current.is_running():
                return False
            await self._stop_orphans(service, slot, state)
            if current:
                await self._hand_over(service, state, current, reason=f"replaced in {slot}")
            state.slots[slot] = await self._start(service, slot, version, env, service_env)
            self._states.save(service, state)
            return True

    async def wait_ready(
        self, service: str, slot: Slot, version: str, progress: Progress
    ) -> None:
        process = self._process(service, slot)
        if process.version != version:
            raise PermanentTargetError(f"{slot} of {service} runs {process.version}, not {version}")
        deadline = time.monotonic() + self._ready_timeout_seconds
        async with http_client(timeout=2) as client:
            while (problem := await self._readiness_problem(client, process)) is not None:
                if not process.is_running():
                    raise PermanentTargetError(
                        f"{service} {version} in {slot} exited; its log ends: {self._log_tail(process)}"
                    )
                if time.monotonic() > deadline:  # waiting the whole timeout again would not help
                    raise PermanentTargetError(
                        f"{service} {version} in {slot} not ready within "
                        f"{self._ready_timeout_seconds:g}s: {problem}"
                    )
                progress(f"waiting for {service} {version} in {slot}: {problem}")
                await asyncio.sleep(READY_POLL_SECONDS)

    def endpoint(self, service: str, slot: Slot) -> str:
        return self._process(service, slot).url

    async def set_traffic(self, request: TrafficRequest) -> bool:
        service = request.ref.service
        async with self._locks[service]:
            state = self._states.load(service)
            if is_stale(state.traffic_fence, request):
                log.warning("traffic.stale_change_ignored", service=service, release_id=request.ref.release_id,
                            sequence=request.sequence, applied=state.traffic_fence.sequence)
                return False
            stable, canary = state.slots.get(Slot.STABLE), state.slots.get(Slot.CANARY)
            if canary is None and (request.canary_weight > 0 or request.segments_to_canary):
                raise PermanentTargetError(f"{service} has no canary to send traffic to")
            split = split_of(request, stable.url if stable else None, canary.url if canary else None)
            changed = await self._route(service, state, split, release_id=request.ref.release_id)
            state.traffic_fence = fence_of(request)
            self._states.save(service, state)
            return changed

    async def stop(self, service: str, slot: Slot) -> bool:
        async with self._locks[service]:
            state = self._states.load(service)
            process = state.slots.get(slot)
            if process is None:
                return False
            stopped = await self._hand_over(service, state, process, reason=f"{slot} stopped")
            del state.slots[slot]
            self._states.save(service, state)
            log.info("slot.stopped", service=service, slot=slot, version=process.version, was_running=stopped)
            return stopped

    async def promote(
        self, service: str, progress: Progress = no_progress, *, release_id: str = "", keep: int = 2
    ) -> str | None:
        """Re-points traffic at the running canary process: nothing to wait for. The
        promotion is recorded with the state it changes, in one write, so a retry never
        records it twice."""
        async with self._locks[service]:
            state = self._states.load(service)
            canary, stable = state.slots.get(Slot.CANARY), state.slots.get(Slot.STABLE)
            if canary is None:
                return self._already_promoted(service, state)
            if not canary.is_running():
                raise PermanentTargetError(f"the canary of {service} ({canary.version}) is not running")
            await self._route(service, state, Split(canary_weight=0, stable_url=canary.url), reason="promote")
            state.record_promotion(canary, release_id, keep)
            if stable:
                await self._retire_superseded(service, state)
                state.slots[PREVIOUS] = stable
            state.slots[Slot.STABLE] = state.slots.pop(Slot.CANARY)
            self._states.save(service, state)
            log.info("canary.promoted", service=service, version=canary.version,
                     previous=stable.version if stable else None)
            return stable.version if stable else None

    async def revert(self, service: str, version: str, progress: Progress = no_progress) -> bool:
        """Re-points traffic at the warm previous process and swaps the two: the version
        it replaces stays warm in `previous` until retired.

        The window after a revert: `version` is stable again, the window's other versions
        stay, and the version reverted from leaves it (into `older`, see
        pipeline/targets/history.py), so that a later revert to "the newest in the
        window" goes further back instead of onto it. Named explicitly, it can still be
        reverted to while it is warm.

        The traffic fence is left as it is: set_traffic only ever routes to the stable
        and canary slots, and the version reverted from now sits in `previous`, so no
        traffic change of the release, however late, can send traffic back to it."""
        async with self._locks[service]:
            state = self._states.load(service)
            stable, previous = state.slots.get(Slot.STABLE), state.slots.get(PREVIOUS)
            if stable and stable.version == version:
                return False
            if previous is None or previous.version != version or not previous.is_running():
                raise PermanentTargetError(self._not_warm(service, version, state))
            await self._route(service, state, Split(canary_weight=0, stable_url=previous.url), reason="revert")
            state.record_revert(previous)
            state.slots[Slot.STABLE] = state.slots.pop(PREVIOUS)
            if stable:
                state.slots[PREVIOUS] = stable
            self._states.save(service, state)
            log.info("version.reverted", service=service, version=version, previous=stable.version if stable else None)
            return True

    async def rollback_window(self, service: str) -> RollbackWindow:
        return self._states.load(service).window()

    async def health(self, service: str, version: str) -> VersionHealth:
        """Asks the readiness check of the slot that runs `version`, among stable,
        previous and canary."""
        slots = self._states.load(service).slots
        running = [
            (slot, slots[slot]) for slot in (Slot.STABLE, PREVIOUS, Slot.CANARY)
            if slot in slots and slots[slot].version == version and slots[slot].is_running()
        ]
        if not running:
            return VersionHealth(version=version, healthy=False, detail="not running")
        slot, process = running[0]
        async with http_client(timeout=HEALTH_TIMEOUT_SECONDS) as client:
            problem = await self._readiness_problem(client, process)
        return VersionHealth(version=version, healthy=problem is None, detail=problem or f"ready in {slot}")

    async def retire(self, service: str, version: str) -> bool:
        async with self._locks[service]:
            state = self._states.load(service)
            previous = state.slots.get(PREVIOUS)
            if previous is None or previous.version != version:
                return False
            stopped = await self._hand_over(service, state, previous, reason="retired")
            del state.slots[PREVIOUS]
            self._states.save(service, state)
            log.info("version.retired", service=service, version=version, was_running=stopped)
            return stopped

    async def stable_version(self, service: str) -> str | None:
        stable = self._states.load(service).slots.get(Slot.STABLE)
        return stable.version if stable else None

    # --- helpers -------------------------------------------------------------------------

    async def _route(self, service: str, state: ServiceState, split: Split, **context: str) -> bool:
        """Apply `split` and note it in `state`, which the caller saves."""
        changed = await self._router.apply(service, split)
        state.routing = split
        if changed:
            log.info("traffic.applied", router=ROUTER, service=service, canary_weight=split.canary_weight,
                     segments_to_canary=split.segments_to_canary, stable_url=split.stable_url,
                     canary_url=split.canary_url, **context)
        return changed

    def _already_promoted(self, service: str, state: ServiceState) -> str | None:
        """promote() retried after it succeeded: report what the first call reported."""
        if Slot.STABLE not in state.slots:
            raise PermanentTargetError(f"{service} has no canary to promote")
        previous = state.slots.get(PREVIOUS)
        return previous.version if previous else None

    async def _retire_superseded(self, service: str, state: ServiceState) -> None:
        """A `previous` version not yet retired is two releases old once the stable
        version takes its place: stop it rather than lose track of it."""
        superseded = state.slots.pop(PREVIOUS, None)
        if superseded:
            await self._hand_over(service, state, superseded, reason="superseded")
            log.info("version.retired", service=service, version=superseded.version, reason="superseded")

    async def _hand_over(self, service: str, state: ServiceState, process: SlotProcess, reason: str) -> bool:
        """Stop `process` without failing a request: take it out of the router if the
        routing still sends it traffic (the workflow normally routed it 0% already),
        wait until it drained, then SIGTERM. False when it was not running."""
        if state.routing and sends_traffic_to(state.routing, process.url):
            await self._route(service, state, without(state.routing, process.url), reason=f"{process.version} {reason}")
        if not process.is_running():
            return False
        await wait_drained(process.url)
        return await terminate(process.pid, process.instance_id, STOP_GRACE_SECONDS)

    def _not_warm(self, service: str, version: str, state: ServiceState) -> str:
        window = state.window()
        if any(entry.version == version for entry in window.versions):
            return (f"{version} of {service} is no longer warm (its process is gone): "
                    "revert to it by running it again (deploy, wait ready, promote)")
        if version in window.older:
            return f"{version} of {service} is outside the rollback window; its configuration is no longer kept"
        return f"{version} was never promoted for {service}"

    async def _start(
        self, service: str, slot: Slot, version: str, env: dict[str, str], service_env: dict[str, str]
    ) -> SlotProcess:
        """Start the version with `service_env`; the slot records `env`, which holds
        references rather than secret values."""
        port = _free_port()
        instance_id = f"{self._slot_marker(service, slot)}{uuid.uuid4().hex[:8]}"
        argv = [sys.executable, "-m", "pipeline.gallery.app",
                "--port", str(port), "--version", version, "--instance-id", instance_id]
        pid = await launch_detached(argv, service_env, self._log_path(instance_id))
        log.info("slot.started", service=service, slot=slot, version=version, pid=pid, port=port,
                 env_names=sorted(env))
        return SlotProcess(pid=pid, port=port, version=version, instance_id=instance_id, env=env)

    async def _stop_orphans(self, service: str, slot: Slot, state: ServiceState) -> None:
        """Stop processes started for this slot whose start was never recorded (a crash
        between starting and saving the state)."""
        recorded = {process.pid for process in state.slots.values()}
        marker = self._slot_marker(service, slot)
        for pid in processes_marked(marker):
            if pid not in recorded:
                log.warning("orphan.stopping", service=service, slot=slot, pid=pid)
                await terminate(pid, marker)

    async def _readiness_problem(self, client: httpx.AsyncClient, process: SlotProcess) -> str | None:
        try:
            response = await client.get(f"{process.url}/health/ready")
        except httpx.HTTPError as error:
            return f"/health/ready unreachable ({type(error).__name__})"
        return None if response.status_code == 200 else f"/health/ready answered {response.status_code}"

    def _process(self, service: str, slot: Slot) -> SlotProcess:
        process = self._states.load(service).slots.get(slot)
        if process is None:
            raise PermanentTargetError(f"nothing runs in {slot} of {service}")
        return process

    def _flags_environment(self, service: str, slot: Slot) -> dict[str, str]:
        environment = "staging" if slot == Slot.STAGING else "production"
        return {
            FLAGS_FILE_VARIABLE: str(flags_file(self.env.state_dir, environment)),
            SCRAPE_DIR_VARIABLE: str(scrape_targets_dir(self.env.state_dir)),
            SERVICE_VARIABLE: service,
        }

    def _slot_marker(self, service: str, slot: Slot) -> str:
        return f"{self.env.instance_prefix}{service}.{slot}."

    def _log_path(self, instance_id: str) -> Path:
        return self.env.logs_dir / f"{instance_id}.log"

    def _log_tail(self, process: SlotProcess) -> str:
        try:
            lines = self._log_path(process.instance_id).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


def _base_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name in BASE_VARIABLES or name.startswith("LC_")}


def _resolve_secrets(env: dict[str, str]) -> dict[str, str]:
    """Replace each `secret://NAME` with the worker's PIPELINE_SECRET_NAME: the request
    carries references, the value only reaches the process. Only that declared prefix
    is read, so a release cannot copy any other worker variable into its service."""
    resolved = {}
    for name, value in env.items():
        secret = secret_name(value)
        if secret is not None:
            source = worker_secret_variable(secret)
            if source not in os.environ:
                raise PermanentTargetError(
                    f"{name} refers to secret {secret}, which this worker does not declare ({source})"
                )
            value = os.environ[source]
        resolved[name] = value
    return resolved


def _database_environment(service: str, slot: Slot) -> dict[str, str]:
    """Where the service keeps its data, from the worker's databases file; nothing
    without one (the sample gallery then keeps its photos in memory)."""
    configured = service_database(service)
    if configured is None:
        return {}
    url = database_url(service, "staging" if slot == Slot.STAGING else "production")
    files = {"GALLERY_FILES_DIR": configured.files_dir} if configured.files_dir else {}
    return {"GALLERY_DATABASE_URL": url, **files}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
