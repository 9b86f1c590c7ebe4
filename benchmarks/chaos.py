"""Soak and chaos on the real local stack: many releases over several services while
the worker is SIGKILLed at random moments, the Temporal server restarts once on its
database file, the router is killed once and malformed signals and starts arrive
through the `temporal` CLI. It prints what an operator would want to know afterwards,
and exits non-zero when a figure misses its threshold.

Each service runs one release at a time (the next starts when the previous ends),
services in parallel. A service's first release installs it; later ones are canaries,
about one in three of them bad (half its responses fail, and only the `unit` suite
runs in staging, so production traffic must catch it): good ones should end
`promoted`, bad ones `rolled_back`. The script gives every approval through the
`approve` signal. A LoadGenerator sends traffic to every service for the whole soak.

Kill switch after a worker loss: a release on its own service, caught while a
`set_traffic` activity runs in its traffic shift; the worker is SIGKILLed, the
`kill_switch` signal sent, the worker restarted 2 s later, and the clock runs from the
restarted worker being up to Traefik's API serving that service 100% to stable.

Thresholds (`--short` is meant for CI; they are deliberately a little generous):
  releases ending as expected   100 %  (every release, not a sample)
  traffic steps applied twice   0      (consecutive identical entries of traffic.log)
  orphan processes              0      (after the stack stopped; and one service
                                        process per service when the soak ends)
  workflow tasks failed         0      (benign UnhandledCommand races excluded), none stuck
  kill switch after worker loss <= 5 s after the restarted worker is up
  router killed -> answering    <= 5 s (target 2 s; more than 10 s: restarted here, failed)
  longest stall                 <= 45 s (a heartbeat timeout of 30 s plus the fast
                                        policy's longest natural wait)
  failed requests               none beyond the bad canaries' injected 500s and
                                the router outage, within 0.1 % of all requests

`--short` (12 releases over 2 services, 2 random worker kills, plus the kill-switch
release, the server restart, the router kill and the malformed inputs) shortens the
canary to 4 s and each step to 2 s; it takes about 3 minutes on an idle 2-core
machine, and more under load, where the worker takes longer to start after each kill.

    .venv/bin/python -m benchmarks.chaos --short          # CI
    .venv/bin/python -m benchmarks.chaos [--releases 100] [--services 4] [--worker-kills 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, PendingActivityState, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from benchmarks.common import bench_environment, run_benchmark
from pipeline.local.devstack import Stack, installed_binary, local_stack, restart_temporal
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.env import LocalEnvironment, processes_marked
from pipeline.temporal import exit_process
from tests.helpers.real_stack import FAST_POLICY
from workflows.release import ReleaseWorkflow

SHORT_POLICY = {**FAST_POLICY, "canary_duration_seconds": 4, "step_interval_seconds": 2}
"""--short: one analysis interval less in the canary and each step, to fit CI's minutes."""
BAD_ENV = {"GALLERY_ERROR_RATE": "0.5"}
KILL_SWITCH_STEPS = [30, 40, 50, 60, 70, 80, 90, 100]
"""Many short steps: many `set_traffic` activities to catch in flight."""

LOAD_RATE = 20
POLL_SECONDS = 0.25
RPC_TIMEOUT = timedelta(seconds=3)
RELEASE_BOUND_SECONDS = 300
"""A release still running after this is reported stuck and terminated (freeing its lock)."""
EST_RELEASE_SECONDS = 18
"""Rough duration of one release, to spread the chaos over the soak."""
WORKER_DOWN_SECONDS = 2
ROUTER_SUPERVISOR_WAIT_SECONDS = 10
KILL_SWITCH_CATCH_SECONDS = 60
KILL_SWITCH_WINDOW_SECONDS = 15
"""How long the kill-switch measurement holds other chaos off; it goes on watching
(without holding it) until its release ends, to report the real figure."""
MALFORMED_AFTER_SECONDS = 5
CLI_TIMEOUT_SECONDS = 30

TARGET_KILL_SWITCH_SECONDS = 5.0
TARGET_ROUTER_SECONDS = 5.0
TARGET_STALL_SECONDS = 45.0
TARGET_OTHER_FAILED_SHARE = 0.001


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:7.1f}s"


@dataclass
class Release:
    workflow_id: str
    service: str
    version: str
    expected: str | None
    """`promoted`, `rolled_back`, or None: any outcome, as long as it ends."""
    bad: bool = False
    started_at: float = 0.0
    ended_at: float | None = None
    gave_up_at: float | None = None
    outcome: str | None = None
    note: str = ""
    changes: list[tuple[float, tuple]] = field(default_factory=list)
    timeline: list[Any] = field(default_factory=list)
    """The last timeline its status showed."""

    @property
    def as_expected(self) -> bool:
        return self.ended_at is not None and (self.expected is None or self.outcome == self.expected)

    def longest_stall(self) -> tuple[float, str, float, float]:
        """The longest time its status (phase, canary_weight, pending approval) did not
        change, where, and from when to when. Approval waits count: this script
        approves within a poll."""
        longest, where, since, until = 0.0, "", 0.0, 0.0
        marks = [*self.changes, (self.ended_at or self.gave_up_at or time.monotonic(), ("end", None, None))]
        for (at, key), (next_at, _) in zip(marks, marks[1:]):
            if next_at - at > longest:
                waiting = f" waiting for {key[2]} approval" if key[2] else ""
                longest, where, since, until = next_at - at, f"{self.workflow_id} in {key[0]} at {key[1]}%{waiting}", at, next_at
        return longest, where, since, until

    def timeline_between(self, since: float, until: float) -> list[str]:
        """Its timeline entries from `since` to `until` (time.monotonic())."""
        to_wall = time.time() - time.monotonic()
        entries = []
        for entry in self.timeline:
            try:
                at = datetime.fromisoformat(entry.at).timestamp()
            except (AttributeError, ValueError):
                continue
            if since + to_wall - 1 <= at <= until + to_wall + 1:
                entries.append(f"{entry.at[11:19]} {entry.message[:160]}")
        return entries


class Soak:
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

    # --- releases --------------------------------------------------------------------------

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

    # --- chaos -----------------------------------------------------------------------------

    def worker_alive(self) -> bool:
        process = getattr(self.stack.worker, "_process", None)
        return process is not None and process.returncode is None

    async def restart_worker(self) -> float:
        """Start the worker again (twice at most); when it was up."""
        for attempt in (1, 2):
            began = time.monotonic()
            try:
                await self.stack.worker.start()
                self.worker_starts.append(time.monotonic() - began)
                return time.monotonic()
            except Exception as error:
                self.notes.append(f"worker restart attempt {attempt} failed: {error}")
        raise RuntimeError("the worker would not restart")

    async def kill_worker(self, why: str) -> None:
        async with self.chaos:
            if self.worker_alive():
                await self.stack.worker.kill()
                self.worker_kills += 1
                self.say(f"worker SIGKILLed ({why})", chaos=True)
            await asyncio.sleep(WORKER_DOWN_SECONDS)
            await self.restart_worker()

    async def restart_server(self) -> None:
        async with self.chaos:
            self.say("restarting the Temporal server on its database file", chaos=True)
            began = time.monotonic()
            try:
                await restart_temporal(self.stack)
            except Exception as error:
                self.failures.append(f"Temporal server restart failed: {error}")
                return
            self.restart_done_at = time.monotonic()
            self.figures["server_restart"] = self.restart_done_at - began
            self.say(f"Temporal server back in {self.figures['server_restart']:.2f} s")
            await asyncio.sleep(1)
            if not self.worker_alive():
                self.failures.append("the worker exited when the Temporal server restarted")
                await self.restart_worker()

    def traefik_marker(self) -> str:
        for name in ("traefik_marker", "_traefik_marker"):
            if isinstance(marker := getattr(self.local, name, None), str):
                return marker
        return f"--configFile={self.local.traefik_config}"

    async def kill_router(self, services: list[str]) -> None:
        async with self.chaos:
            answering = [s for s in services if s in self.installed]
            pids = processes_marked(self.traefik_marker())
            if not pids or not answering:
                self.failures.append(f"router kill: nothing to kill or to check (traefik pids {pids}, services {answering})")
                return
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            self.say(f"router (traefik pid {pids}) SIGKILLed; waiting for {answering} to answer", chaos=True)
            async with httpx.AsyncClient(base_url=self.local.http_url, timeout=1) as http:
                back = await self._answering(http, answering, killed + ROUTER_SUPERVISOR_WAIT_SECONDS)
                if back is None:
                    self.figures["router"] = f"not back within {ROUTER_SUPERVISOR_WAIT_SECONDS} s (no supervisor restarted Traefik)"
                    self.failures.append(f"router: {self.figures['router']}")
                    await self.local.ensure_router_running()
                    back = await self._answering(http, answering, time.monotonic() + 20) or time.monotonic()
                    self.notes.append(f"router restarted by this script; all services answering {back - killed:.2f} s after the kill")
                else:
                    self.figures["router"] = back - killed
            self.outage = (killed, back)
            self.say(f"router: {self.figures['router'] if isinstance(self.figures['router'], str) else f'back in {back - killed:.2f} s'}")

    async def _answering(self, http: httpx.AsyncClient, services: list[str], deadline: float) -> float | None:
        """When every service answered from one of its versions, or None by the deadline."""
        while time.monotonic() < deadline:
            answers = await asyncio.gather(*(self._answers(http, s) for s in services))
            if all(answers):
                return time.monotonic()
            await asyncio.sleep(0.05)
        return None

    @staticmethod
    async def _answers(http: httpx.AsyncClient, service: str) -> bool:
        try:
            response = await http.get("/api/photos", headers={"Host": f"{service}.localhost"})
        except httpx.HTTPError:
            return False
        return response.status_code < 500 and "X-Served-Version" in response.headers

    async def all_on_stable(self, admin: httpx.AsyncClient, service: str) -> bool:
        """Whether Traefik serves `service` 100% to stable: no canary in its weighted
        service and no segments router."""
        try:
            weighted = await admin.get(f"/api/http/services/{service}-weighted@file")
            segments = await admin.get(f"/api/http/routers/{service}-segments@file")
        except httpx.HTTPError:
            return False
        if weighted.status_code != 200 or segments.status_code != 404:
            return False
        children = weighted.json().get("weighted", {}).get("services", [])
        return bool(children) and all(c["name"] == f"{service}-stable" or not c.get("weight") for c in children)

    async def kill_switch_after_worker_loss(self, service: str) -> None:
        install = Release(f"chaos-{service}-1.0.0-{uuid.uuid4().hex[:6]}", service, "1.0.0", "promoted")
        release = Release(f"chaos-{service}-2.0.0-{uuid.uuid4().hex[:6]}", service, "2.0.0", "rolled_back")
        self.extra += [install, release]
        await self.start(install, self.request(service, "1.0.0", test_suites=["unit"]))
        await self.follow(install)
        if install.outcome != "promoted":
            self.figures["kill_switch"] = f"not measured: its first release ended {install.outcome}"
            self.failures.append(f"kill switch: {self.figures['kill_switch']}")
            return
        self.installed.add(service)
        await self.start(release, self.request(service, "2.0.0", test_suites=["unit"], steps=KILL_SWITCH_STEPS, step_interval_seconds=2))
        following = asyncio.create_task(self.follow(release))
        handle = self.stack.client.get_workflow_handle(release.workflow_id)
        deadline = time.monotonic() + RELEASE_BOUND_SECONDS
        while not following.done() and time.monotonic() < deadline and not any(
            key[0] in ("production_approval", "progressive_shift") for _, key in release.changes
        ):
            await asyncio.sleep(0.05)
        async with self.chaos:
            caught = await self._catch_set_traffic(handle)
            if caught:
                await self.stack.worker.kill()
                self.worker_kills += 1
                signalled = time.monotonic()
                await handle.signal("kill_switch", {"reason": "chaos", "actor": "chaos"}, rpc_timeout=RPC_TIMEOUT)
                self.say(f"{release.workflow_id}: worker SIGKILLed during {caught}, kill_switch sent", chaos=True)
                await asyncio.sleep(WORKER_DOWN_SECONDS)
                up = await self.restart_worker()
                async with httpx.AsyncClient(base_url=self.local.admin_url, timeout=1) as admin:
                    stable_at = await self._wait_all_on_stable(admin, service, up + KILL_SWITCH_WINDOW_SECONDS)
        if not caught:
            self.figures["kill_switch"] = (f"not measured: no set_traffic caught in flight in the traffic shift "
                                           f"(release {release.changes[-1][1] if release.changes else 'not seen'})")
            self.failures.append(f"kill switch: {self.figures['kill_switch']}")
            await following
            return
        if stable_at is None:
            async with httpx.AsyncClient(base_url=self.local.admin_url, timeout=1) as admin:
                later = await self._wait_all_on_stable(admin, service, release.started_at + RELEASE_BOUND_SECONDS, following)
            eventually = (f"all traffic on stable {later - up:.1f} s after the restart" if later
                          else "never seen on stable while it ran")
            self.figures["kill_switch"] = f"timed out after {KILL_SWITCH_WINDOW_SECONDS} s ({eventually})"
            self.failures.append(f"kill switch after worker loss: {self.figures['kill_switch']}")
        else:
            self.figures["kill_switch"] = stable_at - up
            self.notes.append(f"kill switch: {stable_at - signalled:.2f} s from the signal; worker down {WORKER_DOWN_SECONDS} s, "
                              f"then {self.worker_starts[-1]:.1f} s to start")
        self.say(f"kill switch after worker loss: {self.figures['kill_switch'] if isinstance(self.figures['kill_switch'], str) else f'{stable_at - up:.2f} s'}")
        await following

    async def _catch_set_traffic(self, handle: Any) -> str | None:
        """Poll until a set_traffic activity runs during the traffic shift; its summary."""
        deadline = time.monotonic() + KILL_SWITCH_CATCH_SECONDS
        while time.monotonic() < deadline:
            try:
                described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            except Exception:
                await asyncio.sleep(0.1)
                continue
            if described.status is not WorkflowExecutionStatus.RUNNING:
                return None
            for pending in described.raw_description.pending_activities:
                if (pending.activity_type.name == "set_traffic"
                        and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                        and any(key[0] == "progressive_shift" for _, key in self._release_of(handle).changes)):
                    return f"set_traffic (attempt {pending.attempt}) in the traffic shift"
            await asyncio.sleep(0.02)
        return None

    def _release_of(self, handle: Any) -> Release:
        return next(r for r in self.extra if r.workflow_id == handle.id)

    async def _wait_all_on_stable(self, admin: httpx.AsyncClient, service: str, deadline: float,
                                  following: asyncio.Task | None = None) -> float | None:
        while time.monotonic() < deadline and not (following and following.done()):
            if await self.all_on_stable(admin, service):
                return time.monotonic()
            await asyncio.sleep(0.05)
        return time.monotonic() if following and await self.all_on_stable(admin, service) else None

    async def malformed_inputs(self, service: str) -> None:
        """Malformed signals to a running release, and malformed starts, through the CLI."""
        await asyncio.sleep(MALFORMED_AFTER_SECONDS)
        target = Release(f"chaos-{service}-1.0.0-{uuid.uuid4().hex[:6]}", service, "1.0.0", None)
        self.extra.append(target)
        await self.start(target, self.request(service, "1.0.0", test_suites=["unit"], required_approvals=["canary", "production"]))
        handle = self.stack.client.get_workflow_handle(target.workflow_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for it to ask for its approval
            try:
                if (await handle.query(ReleaseWorkflow.status, rpc_timeout=RPC_TIMEOUT)).pending_approval:
                    break
            except Exception:
                pass
            await asyncio.sleep(POLL_SECONDS)
        wid = ["--workflow-id", target.workflow_id]
        answers = [
            await self.cli("approve '\"x\"'", "workflow", "signal", *wid, "--name", "approve", "--input", '"x"'),
            await self.cli("kill_switch with two --input", "workflow", "signal", *wid, "--name", "kill_switch",
                           "--input", '{"reason": "a", "actor": "x"}', "--input", '{"reason": "b", "actor": "y"}'),
            await self.cli("kill_switch without --input", "workflow", "signal", *wid, "--name", "kill_switch"),
        ]
        starts = []
        for label, inputs in (("start without input", []),
                              ("start with two inputs", ["--input", json.dumps(self.request(service + "-x", "1.0.0")),
                                                         "--input", '{"junk": true}'])):
            started = Release(f"chaos-bad-start-{uuid.uuid4().hex[:6]}", "-", "-", None)
            self.extra.append(started)
            answers.append(await self.cli(label, "workflow", "start", "--type", "ReleaseWorkflow", "--task-queue",
                                          self.stack.task_queue, "--workflow-id", started.workflow_id, *inputs))
            started.started_at = time.monotonic()
            starts.append(started)
        self.say("malformed inputs sent: " + "; ".join(answers))
        await asyncio.gather(self.follow(target, 120), *(self.follow(s, 60) for s in starts))
        try:
            ignored = (await self.stack.client.get_workflow_handle(target.workflow_id).query(
                ReleaseWorkflow.status, rpc_timeout=RPC_TIMEOUT)).ignored_signals
        except Exception as error:
            ignored = [f"status unreadable: {error}"]
        for release in (target, *starts):
            self.say(f"malformed-input target {release.workflow_id}: {release.outcome or 'did not end'} {release.note}")
        self.say(f"{target.workflow_id} ignored signals: {ignored}")

    async def cli(self, label: str, *argv: str) -> str:
        process = await asyncio.create_subprocess_exec(
            installed_binary("temporal"), *argv, "--address", self.stack.temporal_address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            return f"{label}: CLI timed out"
        why = stderr.decode().strip().splitlines()[-1:] if process.returncode else []
        return f"{label}: exit {process.returncode}{' (' + why[0] + ')' if why else ''}"

    # --- the soak --------------------------------------------------------------------------

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

    # --- figures ---------------------------------------------------------------------------

    def steps_applied_twice(self) -> list[str]:
        """Consecutive identical changes for the same service and release (its canary)."""
        entries = [json.loads(line) for line in self.local.traffic_log.read_text().splitlines() if line.strip()]
        last: dict[str, dict] = {}
        twice = []
        for entry in entries:
            previous = last.get(entry["service"])
            same = ("release_id", "canary_weight", "segments_to_canary", "stable_url", "canary_url")
            if previous is not None and all(previous.get(k) == entry.get(k) for k in same):
                twice.append(f"{entry['service']} {entry['canary_weight']}% at {entry.get('timestamp')}")
            last[entry["service"]] = entry
        return twice

    async def workflow_task_failures(self) -> tuple[list[str], int, list[str], Counter]:
        """Failed workflow tasks of every workflow (benign UnhandledCommand races apart),
        how many benign ones, the workflows still running, and the activity attempts that
        were retried (what a killed worker costs: an attempt it held waits out its
        heartbeat or start-to-close timeout), by activity type and why."""
        ids = {r.workflow_id for r in [*self.releases, *self.extra]}
        running = []
        async for execution in self.stack.client.list_workflows():
            ids.add(execution.id)
        failed, benign, timed_out = [], 0, Counter()
        for workflow_id in sorted(ids):
            handle = self.stack.client.get_workflow_handle(workflow_id)
            try:
                described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            except Exception:
                continue
            if described.status is WorkflowExecutionStatus.RUNNING:
                running.append(workflow_id)
            activity_types: dict[int, str] = {}
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    attributes = event.activity_task_started_event_attributes
                    if attributes.attempt > 1:
                        failure = attributes.last_failure
                        why = (TimeoutType.Name(failure.timeout_failure_info.timeout_type).removeprefix("TIMEOUT_TYPE_").lower()
                               + " timeout" if failure.HasField("timeout_failure_info") else failure.message[:60])
                        timed_out[f"{activity_types.get(attributes.scheduled_event_id, '?')} ({why})"] += attributes.attempt - 1
                if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    continue
                attributes = event.workflow_task_failed_event_attributes
                if attributes.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
                    benign += 1
                else:
                    cause = WorkflowTaskFailedCause.Name(attributes.cause)
                    failed.append(f"{workflow_id}: {cause}: {attributes.failure.message[:200]}")
        return failed, benign, running, timed_out

    def requests(self, loads: list[LoadGenerator]) -> tuple[int, Counter, Counter]:
        """All requests, failed ones by kind, and the unexplained ones by (service, version, status)."""
        bad_versions = {(r.service, r.version) for r in self.releases if r.bad}
        kinds, unexplained, total = Counter(), Counter(), 0
        for load in loads:
            for served in load.log:
                if self.ended and served.at > self.ended:
                    continue
                total += 1
                failed = served.status >= 500
                if not failed:
                    continue
                if served.status == 500 and (load.service, served.version) in bad_versions:
                    kinds["injected by bad canaries"] += 1
                elif self.outage and self.outage[0] <= served.at <= self.outage[1] + 5:
                    kinds["during the router outage"] += 1
                else:
                    kinds["other"] += 1
                    unexplained[(load.service, served.version, served.status, f"{served.at - self.began:.0f}s")] += 1
        return total, kinds, unexplained


def service_processes(local: LocalEnvironment) -> list[int]:
    return processes_marked(local.instance_prefix)


def leftovers(local: LocalEnvironment, db_file: Path) -> list[int]:
    """Every process still naming this environment: services, Traefik, the dev server."""
    return sorted(set(processes_marked(local.instance_prefix)) | set(processes_marked(str(local.state_dir)))
                  | set(processes_marked(str(db_file))))


async def main(releases: int | None, services: int | None, worker_kills: int | None, short: bool, seed: int) -> None:
    releases = releases or (12 if short else 100)
    services = services or (2 if short else 4)
    worker_kills = worker_kills if worker_kills is not None else (2 if short else 10)
    deadline_seconds = 420 if short else 1500
    local = bench_environment()
    db_file = local.state_dir / "temporal.db"
    names = [f"chaos-{chr(ord('a') + i)}" for i in range(services)] + ["chaos-ks"]
    soak = None
    loads: list[LoadGenerator] = []
    began = time.monotonic()
    async with local_stack(local, temporal_db=db_file) as stack:
        loads = [LoadGenerator(local.http_url, name, rate_per_second=LOAD_RATE, segment_every=10) for name in names]
        for load in loads:
            await load.__aenter__()
        try:
            soak = Soak(stack, short=short, seed=seed)
            await soak.run(releases, services, worker_kills, deadline_seconds)
            soak.ended = time.monotonic()
        finally:
            for load in loads:
                await load.__aexit__(None, None, None)
        processes_at_end = service_processes(local)
        failed_tasks, benign, running, timed_out = await soak.workflow_task_failures()
    orphans = leftovers(local, db_file)
    worker_alive = soak.worker_alive()
    wall = time.monotonic() - began

    ok = True

    def figure(name: str, value: str, passed: bool, target: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"  {'ok  ' if passed else 'FAIL'} {name}: {value} (target {target})", flush=True)

    print(f"\nchaos soak: {wall:.0f} s wall, {releases} releases over {services} services, seed {seed}", flush=True)
    expected = [r for r in soak.releases if r.as_expected]
    figure("releases ended as expected", f"{len(expected)}/{len(soak.releases)}", len(expected) == len(soak.releases), "all")
    for r in soak.releases:
        if not r.as_expected:
            print(f"       {r.workflow_id}: {r.outcome or 'did not end'}, expected {r.expected} {r.note}")
    extras_ok = all(r.as_expected for r in soak.extra)
    figure("kill-switch and malformed-input releases ended",
           ", ".join(f"{r.workflow_id}: {r.outcome or 'did not end'}" for r in soak.extra), extras_ok, "all end; kill switch rolled back")
    twice = soak.steps_applied_twice()
    figure("traffic steps applied twice", f"{len(twice)}{' ' + '; '.join(twice[:5]) if twice else ''}", not twice, "0")
    figure("workflow tasks failed", f"{len(failed_tasks)} ({benign} benign UnhandledCommand){' ' + '; '.join(failed_tasks[:3]) if failed_tasks else ''}",
           not failed_tasks, "0")
    figure("workflows stuck running", f"{len(running)}{' ' + ', '.join(running[:5]) if running else ''}", not running, "0")
    installed = {r.service for r in [*soak.releases, *soak.extra] if r.outcome == "promoted"}
    figure("service processes when the soak ended", f"{len(processes_at_end)}", len(processes_at_end) == len(installed),
           f"{len(installed)}, one stable per installed service")
    figure("orphan processes after the stack stopped", f"{len(orphans)}{' pids ' + str(orphans) if orphans else ''}",
           not orphans and not worker_alive, "0")
    total, kinds, unexplained = soak.requests(loads)
    share = kinds["other"] / total if total else 1.0
    detail = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "none"
    top = "; ".join(f"{s} {v} {c} at {at}: {n}" for (s, v, c, at), n in unexplained.most_common(4))
    figure("failed requests", f"{sum(kinds.values())} of {total} ({detail}){' other: ' + top if top else ''}",
           total > 0 and share <= TARGET_OTHER_FAILED_SHARE, f"other <= {TARGET_OTHER_FAILED_SHARE:.1%}")
    ks = soak.figures.get("kill_switch", "not measured")
    figure("kill switch after worker loss", f"{ks:.2f} s after the restarted worker was up" if isinstance(ks, float) else ks,
           isinstance(ks, float) and ks <= TARGET_KILL_SWITCH_SECONDS, f"<= {TARGET_KILL_SWITCH_SECONDS:g} s")
    router = soak.figures.get("router", "not measured")
    figure("router killed -> all services answering", f"{router:.2f} s" if isinstance(router, float) else router,
           isinstance(router, float) and router <= TARGET_ROUTER_SECONDS, f"<= {TARGET_ROUTER_SECONDS:g} s, 2 s aimed")
    restart = soak.figures.get("server_restart")
    moving = [t - soak.restart_done_at for r in soak.releases for t, _ in r.changes
              if soak.restart_done_at and t >= soak.restart_done_at]
    figure("Temporal server restarted, workflows continued",
           f"restart {restart:.2f} s, first release moved {min(moving):.2f} s after" if restart and moving else "not done",
           bool(restart and moving), "restarted and moving")
    stalls = [(r.longest_stall(), r) for r in [*soak.releases, *soak.extra] if r.changes]
    (stall, where, since, until), stalled = max(stalls, key=lambda s: s[0][0]) if stalls else ((0.0, "", 0.0, 0.0), None)
    figure("longest stall", f"{stall:.1f} s ({where})", stall <= TARGET_STALL_SECONDS, f"<= {TARGET_STALL_SECONDS:g} s")
    if stalled and stall > TARGET_STALL_SECONDS / 2:
        chaos_then = [f"{what.split(';')[0]} at {at - soak.began:.0f}s" for at, what in soak.chaos_log if since - 5 <= at <= until]
        print(f"       chaos during it: {', '.join(chaos_then) or 'none'}")
        for line in stalled.timeline_between(since, until)[-12:]:
            print(f"       timeline {line}")
    figure("worker kills", f"{soak.worker_kills} (asked {worker_kills} + 1 for the kill switch)",
           soak.worker_kills >= worker_kills + 1, "all done")
    durations = sorted(r.ended_at - r.started_at for r in soak.releases if r.ended_at)
    if durations:
        print(f"  info release durations: median {durations[len(durations) // 2]:.1f} s, max {durations[-1]:.1f} s")
    print(f"  info activity attempts retried (a killed worker's attempt waits out its timeout): "
          f"{', '.join(f'{name} x{n}' for name, n in timed_out.most_common()) or 'none'}")
    if soak.worker_starts:
        print(f"  info worker restarts (start to \"worker started\"): {len(soak.worker_starts)}, "
              f"max {max(soak.worker_starts):.1f} s, mean {sum(soak.worker_starts) / len(soak.worker_starts):.1f} s")
    for problem in soak.failures:
        print(f"  problem: {problem}")
    for note in soak.notes:
        print(f"  note: {note}")
    print("chaos: all figures within their targets" if ok else "chaos: some figures missed their targets", flush=True)
    if not ok:
        exit_process(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=None, help="releases in the soak (100; 12 with --short)")
    parser.add_argument("--services", type=int, default=None, help="services released in parallel (4; 2 with --short)")
    parser.add_argument("--worker-kills", type=int, default=None, help="random worker SIGKILLs (10; 2 with --short)")
    parser.add_argument("--short", action="store_true", help="the CI version: under ~3 minutes on 2 cores")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    run_benchmark(main, parser)
