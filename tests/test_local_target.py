"""LocalTarget against a real Traefik and real sample-service processes.

The module shares one environment: `gallery` gets 1.0 installed as stable (deploy to
canary, then promote) and 2.0 as canary; tests that need other states use other
service names, which run the same sample app.
"""

import json
import os
import signal
import subprocess
from collections import Counter

import httpx
import pytest

from pipeline.errors import MetricsUnavailable
from pipeline.local.env import LocalEnvironment
from pipeline.metrics.traefik import TraefikMetrics
from pipeline.models import Metric, ServiceRef, Slot, TrafficRequest
from pipeline.targets.local import LocalTarget
from tests.helpers.local import free_port, is_alive, local_environment, wait_until

SEGMENT_HEADER = "X-User-Type"


def traffic(service: str, weight: int, segments: bool = False) -> TrafficRequest:
    return TrafficRequest(
        ref=ServiceRef(release_id="test", service=service),
        canary_weight=weight,
        segments_to_canary=segments,
        segment_header=SEGMENT_HEADER,
        canary_segments=["beta-photographer", "internal-team"],
    )


@pytest.fixture(scope="module")
async def env(tmp_path_factory):
    environment = local_environment(tmp_path_factory.mktemp("local-target"))
    yield environment
    await environment.stop_all()


@pytest.fixture(scope="module")
async def target(env):
    return LocalTarget(env, ready_timeout_seconds=20)


async def release(target: LocalTarget, service: str, version: str, env: dict[str, str] | None = None) -> None:
    await target.deploy(service, Slot.CANARY, version, env or {})
    await target.wait_ready(service, Slot.CANARY, version, progress=lambda message: None)


async def install(target: LocalTarget, service: str, version: str) -> str | None:
    """Initial install, as the workflow does it: deploy to canary, then promote."""
    await release(target, service, version)
    return await target.promote(service)


@pytest.fixture(scope="module")
async def gallery(target):
    first_promote = await install(target, "gallery", "1.0")
    await release(target, "gallery", "2.0")
    return first_promote


async def served_versions(env: LocalEnvironment, service: str, count: int, headers=None) -> Counter:
    async with httpx.AsyncClient(base_url=env.http_url, headers={"Host": f"{service}.localhost"}) as client:
        responses = [await client.get("/api/photos", headers=headers) for _ in range(count)]
    return Counter(response.headers.get("X-Served-Version") for response in responses)


def change_log(env: LocalEnvironment) -> list[dict]:
    return [json.loads(line) for line in env.traffic_log.read_text().splitlines()]


async def test_initial_install_makes_the_first_version_stable(target, gallery):
    assert gallery is None  # no previous stable version
    assert await target.stable_version("gallery") == "1.0"
    assert await target.stable_version("never-released") is None


async def test_redeploying_the_running_version_starts_nothing(target, gallery):
    pid = json.loads((target.env.services_dir / "gallery.json").read_text())["slots"]["canary"]["pid"]
    assert await target.deploy("gallery", Slot.CANARY, "2.0", {}) is False
    assert json.loads((target.env.services_dir / "gallery.json").read_text())["slots"]["canary"]["pid"] == pid


async def test_ten_percent_of_requests_reach_the_canary(env, target, gallery):
    await target.set_traffic(traffic("gallery", 10))
    versions = await served_versions(env, "gallery", 300)
    assert set(versions) == {"1.0", "2.0"}
    assert 0.03 <= versions["2.0"] / 300 <= 0.20


async def test_segment_requests_all_reach_the_canary(env, target, gallery):
    await target.set_traffic(traffic("gallery", 10, segments=True))
    beta = await served_versions(env, "gallery", 30, headers={SEGMENT_HEADER: "beta-photographer"})
    others = await served_versions(env, "gallery", 100, headers={SEGMENT_HEADER: "wedding-client"})
    assert beta == {"2.0": 30}
    assert others["1.0"] > others["2.0"]


async def test_the_same_traffic_request_is_applied_once(env, target, gallery):
    request = traffic("gallery", 37)
    assert await target.set_traffic(request) is True
    assert await target.set_traffic(request) is False
    applied = [change for change in change_log(env) if change["canary_weight"] == 37]
    assert len(applied) == 1
    assert applied[0]["service"] == "gallery" and applied[0]["segments_to_canary"] is False


async def test_a_late_forward_step_never_undoes_the_rollback_after_it(env, target, gallery):
    """A step retried after its worker was lost arrives after the kill switch's rollback:
    the rollback (a later sequence of the same release) stands."""
    rollback = traffic("gallery", 0).model_copy(update={"sequence": 8, "ref": ServiceRef(release_id="fenced", service="gallery")})
    late_step = traffic("gallery", 50).model_copy(update={"sequence": 7, "ref": rollback.ref})
    await target.set_traffic(rollback)

    assert await target.set_traffic(late_step) is False
    assert not [change for change in change_log(env) if change["canary_weight"] == 50]
    assert set(await served_versions(env, "gallery", 40)) == {"1.0"}


async def test_metrics_tell_a_failing_canary_from_a_healthy_stable(env, target):
    await install(target, "flaky", "1.0")
    await release(target, "flaky", "2.0", {"GALLERY_ERROR_RATE": "0.5"})
    await target.set_traffic(traffic("flaky", 50))
    metrics = TraefikMetrics(env)
    opening = await metrics.observe("flaky", {})
    assert opening.canary.requests == 0 and opening.canary.values[Metric.ERROR_RATE] is None

    await served_versions(env, "flaky", 400)
    window = await metrics.observe("flaky", opening.cursor)

    assert window.canary.requests + window.stable.requests == 400
    assert window.canary.requests >= 120
    assert 0.35 <= window.canary.values[Metric.ERROR_RATE] <= 0.65
    assert window.stable.values[Metric.ERROR_RATE] == 0
    assert 0 < window.canary.values[Metric.P95_LATENCY_MS] < 500


async def test_unreachable_traefik_is_never_healthy():
    nowhere = LocalEnvironment(state_dir=".", admin_port=free_port())
    with pytest.raises(MetricsUnavailable):
        await TraefikMetrics(nowhere).observe("gallery", {})


async def test_stop_kills_the_process_once(target):
    await target.deploy("stopper", Slot.STAGING, "1.0", {})
    pid = json.loads((target.env.services_dir / "stopper.json").read_text())["slots"]["staging"]["pid"]
    assert is_alive(pid)
    assert await target.stop("stopper", Slot.STAGING) is True
    assert not is_alive(pid)
    assert await target.stop("stopper", Slot.STAGING) is False


async def test_a_dead_process_in_the_slot_is_replaced(target):
    await target.deploy("phoenix", Slot.STAGING, "1.0", {})
    state_file = target.env.services_dir / "phoenix.json"
    first_pid = json.loads(state_file.read_text())["slots"]["staging"]["pid"]
    os.kill(first_pid, signal.SIGKILL)
    await wait_until(lambda: not is_alive(first_pid))
    assert await target.deploy("phoenix", Slot.STAGING, "1.0", {}) is True
    second_pid = json.loads(state_file.read_text())["slots"]["staging"]["pid"]
    assert second_pid != first_pid and is_alive(second_pid)
    await target.stop("phoenix", Slot.STAGING)


async def test_a_recycled_pid_is_never_killed(target):
    await target.deploy("recycled", Slot.STAGING, "1.0", {})
    await target.stop("recycled", Slot.STAGING)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        state_file = target.env.services_dir / "recycled.json"
        forged = {"pid": stranger.pid, "port": 1, "version": "1.0", "instance_id": "gone.recycled.staging.x"}
        state_file.write_text(json.dumps({"slots": {"staging": forged}}))
        assert await target.stop("recycled", Slot.STAGING) is False
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


async def test_promote_swaps_stable_and_is_idempotent_then_retire_stops_the_old(env, target, gallery):
    old_stable_pid = json.loads((env.services_dir / "gallery.json").read_text())["slots"]["stable"]["pid"]
    assert await target.promote("gallery") == "1.0"
    lines = len(change_log(env))
    assert await target.promote("gallery") == "1.0"
    assert len(change_log(env)) == lines
    assert await target.stable_version("gallery") == "2.0"
    assert await served_versions(env, "gallery", 40, headers={SEGMENT_HEADER: "beta-photographer"}) == {"2.0": 40}

    assert is_alive(old_stable_pid)
    assert await target.retire("gallery", "1.0") is True
    assert not is_alive(old_stable_pid)
    assert await target.retire("gallery", "1.0") is False


async def test_a_running_router_is_reused(env, gallery):
    pid = env.traefik_pid_file.read_text()
    await env.ensure_router_running()
    assert env.traefik_pid_file.read_text() == pid
