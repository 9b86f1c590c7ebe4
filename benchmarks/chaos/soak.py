"""The soak: releases over several services, one at a time per service, with the
chaos of actions.py at planned moments."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from benchmarks.chaos.actions import ChaosActions
from benchmarks.chaos.figures import Figures
from benchmarks.chaos.release import Release, elapsed
from benchmarks.chaos.settings import (
    BAD_ENV,
    EST_RELEASE_SECONDS,
    KILL_SWITCH_WINDOW_SECONDS,
    POLL_SECONDS,
    RELEASE_BOUND_SECONDS,
    RPC_TIMEOUT,
    SHORT_POLICY,
)
from pipeline.local.devstack import Stack
from pipeline.local.env import LocalEnvironment
from tests.helpers.real_stack import FAST_POLICY
from workflows.release import ReleaseWorkflow


class Soak(ChaosActions, Figures):
    def __init__(self, stack: Stack, *, short: bool, seed: int):
        self.stack = stack
        self.policy = SHORT_POLICY if short else FAST_POLICY
        self.local: LocalEnvironment = stack.local
        self.short = short
        self.random = random.Random(seed)
        self.began = time.monotonic()
        self.chaos = asyncio.Lock()
        self.releases: list[Release] = []
        self.extra: list[Release] = []
        """Releases outside the N: the kill-switch one, the malformed-signal target, the malformed starts."""
        self.installed: set[str] = set()
        self.figures: dict[str, Any] = {}
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.outage: tuple[float, float] | None = None
        self.worker_kills = 0
        self.restart_done_at: float | None = None
        self.worker_starts: list[float] = []
        self.chaos_log: list[tuple[float, str]] = []
        self.ended: float | None = None
        """When the soak ended: requests still in flight as the stack stops are not counted."""

    def say(self, text: str, chaos: bool = False) -> None:
        if chaos:
            self.chaos_log.append((time.monotonic(), text))
        print(f"[{elapsed(self.began)}] {text}", flush=True)

    async def start(self, release: Release, request: Any, *args: Any) -> None:
        """Start a release, retrying while the server restarts."""
        deadline = time.monotonic() + 60
        while True:
            try:
                await self.stack.client.start_workflow(
                    "ReleaseWorkflow", args=[request, *args], id=release.workflow_id, task_queue=self.stack.task_queue
                )
                break
            except WorkflowAlreadyStartedError:
                break
            except Exception as error:  # the server restarting: retry, bounded
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not start {release.workflow_id}: {error}") from error
                await asyncio.sleep(0.5)
        release.started_at = time.monotonic()

    async def follow(self, release: Release, bound: float = RELEASE_BOUND_SECONDS) -> None:
        """Approve each stage as it comes up, record status changes, until the release
        ends; bounded, a release still running then is terminated and noted stuck."""
        deadline = time.monotonic() + bound
        approved: dict[str, float] = {}
        last_key = None
        while time.monotonic() < deadline:
            handle = self.stack.client.get_workflow_handle(release.workflow_id)
            try:
                status = await handle.query(ReleaseWorkflow.status, rpc_timeout=RPC_TIMEOUT)
            except Exception:  # worker down, server restarting, or the workflow failed
                if await self._closed(release):
                    return
                await asyncio.sleep(POLL_SECONDS)
                continue
            release.timeline = list(status.timeline)
            stage = status.pending_approval.value if status.pending_approval else None
            key = (status.phase.value, status.canary_weight, stage)
            if key != last_key:
                release.changes.append((time.monotonic(), key))
                last_key = key
            if stage and time.monotonic() - approved.get(stage, 0) > 5:
                approved[stage] = time.monotonic()
                try:
                    await handle.signal("approve", {"stage": stage, "approver": "chaos"}, rpc_timeout=RPC_TIMEOUT)
                except Exception:
                    approved.pop(stage)
            if status.outcome is not None and await self._closed(release, wait=30):
                return
            await asyncio.sleep(POLL_SECONDS)
        release.gave_up_at = time.monotonic()
        release.note = f"still running after {bound:.0f} s: terminated"
        try:
            await self.stack.client.get_workflow_handle(release.workflow_id).terminate("chaos: stuck", rpc_timeout=RPC_TIMEOUT)
        except Exception as error:
            release.note += f" (terminate failed: {error})"

    async def _closed(self, release: Release, wait: float = 0) -> bool:
        """Whether the release's workflow has closed; records its outcome if so."""
        handle = self.stack.client.get_workflow_handle(release.workflow_id)
        deadline = time.monotonic() + wait
        while True:
            try:
                described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            except Exception:
                return False
            if described.status is not WorkflowExecutionStatus.RUNNING:
                break
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        release.ended_at = time.monotonic()
        if described.status is WorkflowExecutionStatus.COMPLETED:
            try:
                result = await handle.result(rpc_timeout=RPC_TIMEOUT)
                release.outcome = result.get("outcome") if isinstance(result, dict) else result.outcome.value
            except Exception as error:
                release.outcome = f"completed, result unreadable: {error}"
        else:
            release.outcome = f"workflow {described.status.name.lower()}"
        return True

    def request(self, service: str, version: str, bad: bool = False, **policy: Any) -> dict[str, Any]:
        request = {"service": service, "version": version, "target": "local",
                   "policy": {**self.policy, **({"test_suites": ["unit"]} if bad else {}), **policy}}
        if bad:
            request["env"] = BAD_ENV
        return request

    async def run_service(self, service: str, count: int, deadline: float) -> None:
        for index in range(count):
            version = f"{index + 1}.0.0"
            bad = index > 0 and index % 3 == 2
            release = Release(f"chaos-{service}-{version}-{uuid.uuid4().hex[:6]}", service, version,
                              "rolled_back" if bad else "promoted", bad)
            self.releases.append(release)
            if time.monotonic() > deadline:
                release.note = "not started: the soak ran out of time"
                continue
            await self.start(release, self.request(service, version, bad))
            await self.follow(release)
            if release.outcome == "promoted":
                self.installed.add(service)
            self.say(f"{release.workflow_id}: {release.outcome or 'did not end'}"
                     f"{'' if release.as_expected else f' (expected {release.expected}) {release.note}'}")

    async def run(self, releases: int, services: int, worker_kills: int, deadline_seconds: float) -> None:
        names = [f"chaos-{chr(ord('a') + i)}" for i in range(services)]
        counts = [releases // services + (1 if i < releases % services else 0) for i in range(services)]
        deadline = self.began + deadline_seconds
        estimate = max(counts) * EST_RELEASE_SECONDS
        window_start = 20 + KILL_SWITCH_WINDOW_SECONDS + 10  # after the kill-switch measurement
        window_end = max(window_start + 30, 0.8 * estimate)
        kills = sorted(self.random.uniform(window_start, window_end) for _ in range(worker_kills))
        events = [(at, lambda i=i: self.kill_worker(f"random kill {i + 1}/{worker_kills}")) for i, at in enumerate(kills)]
        events.append((window_start + 0.4 * (window_end - window_start), self.restart_server))
        events.append((window_start + 0.65 * (window_end - window_start), lambda: self.kill_router(names)))

        async def at(offset: float, action: Any) -> None:
            await asyncio.wait({drivers}, timeout=max(0.0, self.began + offset - time.monotonic()))
            if not drivers.done():
                await action()

        self.say(f"{releases} releases over {names} {counts}, {worker_kills} worker kills, chaos between "
                 f"{window_start:.0f} s and {window_end:.0f} s")
        drivers = asyncio.ensure_future(asyncio.gather(*(self.run_service(name, count, deadline) for name, count in zip(names, counts))))
        side = asyncio.gather(
            self.kill_switch_after_worker_loss("chaos-ks"),
            self.malformed_inputs("chaos-signals"),
            *(at(offset, action) for offset, action in events),
        )
        await asyncio.gather(drivers, side)
