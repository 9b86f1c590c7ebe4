"""Zero-downtime hand-over (issue #10): with 50 requests a second through a real
Traefik, no request fails while a version is retired after a promote, while the
canary is stopped (after the workflow routed it 0%, and, as a safety net, while it
still had 10%), or while a bake revert returns to the warm previous version. Every
version answers slowly (GALLERY_LATENCY_MS), so that requests are in flight whenever
a process is taken out.

Also the sample gallery's own part: it counts what is in flight and, on SIGTERM,
finishes it and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable

import httpx
import pytest

from pipeline.local.loadgen import LoadGenerator, Served
from pipeline.models import ServiceRef, Slot, TrafficRequest
from pipeline.targets.local import LocalTarget
from tests.helpers.local import free_port, is_alive, local_environment, wait_until

SLOW = {"GALLERY_LATENCY_MS": "150"}
RATE = 50
SETTLE_RESPONSES = 40
"""Responses counted before a scenario acts, and again after it, so that it acts under load."""


@pytest.fixture(scope="module")
async def target(tmp_path_factory):
    env = local_environment(tmp_path_factory.mktemp("handover"))
    yield LocalTarget(env, ready_timeout_seconds=20)
    await env.stop_all()


async def release(target: LocalTarget, service: str, version: str) -> None:
    await target.deploy(service, Slot.CANARY, version, SLOW)
    await target.wait_ready(service, Slot.CANARY, version, progress=lambda message: None)


async def stable_and_canary(target: LocalTarget, service: str) -> None:
    """1.0 stable, 2.0 in the canary slot with no traffic."""
    await release(target, service, "1.0")
    await target.promote(service)
    await release(target, service, "2.0")


def traffic(service: str, weight: int, sequence: int) -> TrafficRequest:
    return TrafficRequest(
        ref=ServiceRef(release_id="handover", service=service),
        sequence=sequence,
        canary_weight=weight,
        segments_to_canary=False,
    )


def recorded(target: LocalTarget, service: str) -> dict:
    return json.loads((target.env.services_dir / f"{service}.json").read_text())


def slot_pid(target: LocalTarget, service: str, slot: str) -> int:
    return recorded(target, service)["slots"][slot]["pid"]


async def under_load(
    target: LocalTarget, service: str, scenario: Callable[[LoadGenerator], Awaitable[object]]
) -> list[Served]:
    """Every response the load generator counted while `scenario` ran, with load before and after."""
    async with LoadGenerator(target.env.http_url, service, rate_per_second=RATE) as load:
        await wait_until(lambda: len(load.log) >= SETTLE_RESPONSES, timeout=10)
        await scenario(load)
        acted = len(load.log)
        await wait_until(lambda: len(load.log) >= acted + SETTLE_RESPONSES, timeout=10)
    return load.log


async def served_by(load: LoadGenerator, version: str, count: int = 5) -> None:
    await wait_until(lambda: sum(served.version == version for served in load.log) >= count, timeout=10)


def assert_none_failed(log: list[Served]) -> None:
    failed = [(served.version, served.status) for served in log if served.status >= 500]
    assert not failed, f"{len(failed)} of {len(log)} requests failed: {failed[:10]}"
    assert len(log) >= 2 * SETTLE_RESPONSES


async def test_retiring_right_after_a_promote_fails_no_request(target):
    await stable_and_canary(target, "retiring")
    await target.set_traffic(traffic("retiring", 10, sequence=1))
    old_pid = slot_pid(target, "retiring", Slot.STABLE)

    async def promote_then_retire(load: LoadGenerator) -> None:
        await served_by(load, "2.0")
        assert await target.promote("retiring") == "1.0"
        assert await target.retire("retiring", "1.0") is True

    log = await under_load(target, "retiring", promote_then_retire)
    assert_none_failed(log)
    assert {served.version for served in log} == {"1.0", "2.0"}
    assert not is_alive(old_pid)


async def test_stopping_the_canary_after_routing_it_0_percent_fails_no_request(target):
    """What a rollback (and a kill switch) does: 0% to the canary, then stop it."""
    await stable_and_canary(target, "rollback")
    canary_pid = slot_pid(target, "rollback", Slot.CANARY)

    async def roll_back(load: LoadGenerator) -> None:
        await target.set_traffic(traffic("rollback", 10, sequence=1))
        await served_by(load, "2.0")
        await target.set_traffic(traffic("rollback", 0, sequence=2))
        assert await target.stop("rollback", Slot.CANARY) is True

    log = await under_load(target, "rollback", roll_back)
    assert_none_failed(log)
    assert "2.0" in {served.version for served in log}
    assert not is_alive(canary_pid)


async def test_stopping_a_canary_that_still_has_traffic_takes_it_out_of_the_router_first(target):
    await stable_and_canary(target, "unrouted")
    await target.set_traffic(traffic("unrouted", 10, sequence=1))

    async def stop_the_canary(load: LoadGenerator) -> None:
        await served_by(load, "2.0")
        assert await target.stop("unrouted", Slot.CANARY) is True

    log = await under_load(target, "unrouted", stop_the_canary)

    assert_none_failed(log)
    assert "2.0" in {served.version for served in log}
    assert recorded(target, "unrouted")["routing"]["canary_url"] is None


async def test_a_bake_revert_to_the_warm_version_and_retiring_the_reverted_one_fail_no_request(target):
    await stable_and_canary(target, "baked")
    await target.promote("baked")
    reverted_pid = slot_pid(target, "baked", Slot.STABLE)

    async def revert_then_retire(load: LoadGenerator) -> None:
        assert await target.revert("baked", "1.0") is True
        assert await target.retire("baked", "2.0") is True

    log = await under_load(target, "baked", revert_then_retire)
    assert_none_failed(log)
    assert {served.version for served in log} == {"1.0", "2.0"}
    assert log[-1].version == "1.0"
    assert not is_alive(reverted_pid)


# --- the gallery's side --------------------------------------------------------------------


@pytest.fixture
async def slow_gallery():
    """A gallery answering /api/photos in a second, started as a child so its exit code can be read."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.gallery.app", "--port", str(port), "--version", "1.0", "--instance-id", "t"],
        env={**os.environ, "GALLERY_LATENCY_MS": "1000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        async with asyncio.timeout(10):
            while not await answers(client):
                await asyncio.sleep(0.05)
        yield process, client
    process.kill()
    process.wait()


async def answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/health/live")).status_code == 200
    except httpx.HTTPError:
        return False


async def inflight(client: httpx.AsyncClient) -> int:
    return (await client.get("/platform/inflight")).json()["inflight"]


async def test_the_gallery_counts_requests_in_flight_but_not_its_probes(slow_gallery):
    _, client = slow_gallery
    assert await inflight(client) == 0
    slow = asyncio.create_task(client.get("/api/photos"))
    await wait_for(lambda: inflight(client), 1)
    assert (await slow).status_code == 200
    assert await inflight(client) == 0


async def test_on_sigterm_the_gallery_finishes_what_is_in_flight_refuses_new_work_and_exits_0(slow_gallery):
    process, client = slow_gallery
    await client.get("/version")  # leaves an idle keep-alive connection in the pool
    slow = asyncio.create_task(client.get("/api/photos"))
    await wait_for(lambda: inflight(client), 1)

    process.send_signal(signal.SIGTERM)
    ready = await client.get("/health/ready")  # on the idle connection accepted before
    answered = await slow

    assert ready.status_code == 503 and ready.headers["Connection"] == "close"
    assert answered.status_code == 200 and answered.headers["Connection"] == "close"
    with pytest.raises(httpx.ConnectError):
        await client.get("/api/photos")
    assert await asyncio.to_thread(process.wait, 10) == 0


async def wait_for(read: Callable[[], Awaitable[int]], expected: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await read() != expected:
            await asyncio.sleep(0.02)
