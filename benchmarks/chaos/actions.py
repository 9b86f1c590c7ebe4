"""The chaos the soak causes: worker kills, a server restart, a router kill, a kill
switch after a worker loss, malformed input through the `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from typing import Any

import httpx
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecutionStatus

from benchmarks.chaos.release import Release
from benchmarks.chaos.settings import (
    CLI_TIMEOUT_SECONDS,
    KILL_SWITCH_CATCH_SECONDS,
    KILL_SWITCH_STEPS,
    KILL_SWITCH_WINDOW_SECONDS,
    MALFORMED_AFTER_SECONDS,
    POLL_SECONDS,
    RELEASE_BOUND_SECONDS,
    ROUTER_SUPERVISOR_WAIT_SECONDS,
    RPC_TIMEOUT,
    WORKER_DOWN_SECONDS,
)
from pipeline.local.devstack import installed_binary, restart_temporal
from pipeline.local.env import processes_marked
from workflows.release import ReleaseWorkflow


class ChaosActions:
    """Part of Soak (see soak.py), kept apart by concern."""

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
