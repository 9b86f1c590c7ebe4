"""The local target's rollback window, revert and version health (issue #10), on real
sample-service processes behind a real Traefik. Each test has a service of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from datetime import datetime

import httpx
import pytest

from pipeline.errors import PermanentTargetError
from pipeline.models import ServiceRef, Slot, TrafficRequest
from pipeline.targets.local import LocalTarget
from pipeline.targets.local_state import PREVIOUS
from tests.helpers.local import is_alive, local_environment, wait_until


@pytest.fixture(scope="module")
async def target(tmp_path_factory):
    env = local_environment(tmp_path_factory.mktemp("local-revert"))
    yield LocalTarget(env, ready_timeout_seconds=20)
    await env.stop_all()


async def release(target: LocalTarget, service: str, version: str, keep: int = 2) -> str | None:
    """Deploy `version` to canary with an env naming it, and promote it as release r<version>."""
    await target.deploy(service, Slot.CANARY, version, {"FEATURE": f"f{version}"})
    await target.wait_ready(service, Slot.CANARY, version, progress=lambda message: None)
    return await target.promote(service, release_id=f"r{version}", keep=keep)


async def released(target: LocalTarget, service: str, *versions: str) -> None:
    for version in versions:
        await release(target, service, version)


async def served_versions(target: LocalTarget, service: str, count: int = 20) -> Counter:
    async with httpx.AsyncClient(base_url=target.env.http_url, headers={"Host": f"{service}.localhost"}) as client:
        return Counter([(await client.get("/api/photos")).headers.get("X-Served-Version") for _ in range(count)])


def versions(window) -> list[str]:
    return [entry.version for entry in window.versions]


def state_file(target: LocalTarget, service: str):
    return target.env.services_dir / f"{service}.json"


def slot_pid(target: LocalTarget, service: str, slot: str) -> int:
    return json.loads(state_file(target, service).read_text())["slots"][slot]["pid"]


async def test_promote_records_each_version_with_its_env_and_trims_to_keep(target):
    await released(target, "trimmed", "1.0", "2.0", "3.0", "4.0")
    window = await target.rollback_window("trimmed")

    assert window.stable == "4.0"
    assert versions(window) == ["3.0", "2.0"]
    assert window.older == ["1.0"]
    assert window.warm == ["3.0"]
    newest = window.versions[0]
    assert newest.env == {"FEATURE": "f3.0"} and newest.release_id == "r3.0"
    assert datetime.fromisoformat(newest.promoted_at).utcoffset().total_seconds() == 0


async def test_a_retried_promote_records_once(target):
    await released(target, "retried", "1.0", "2.0")
    assert await target.promote("retried", release_id="r2.0") == "1.0"
    history = json.loads(state_file(target, "retried").read_text())["history"]["versions"]
    assert [entry["version"] for entry in history] == ["2.0", "1.0"]


async def test_a_warm_revert_swaps_stable_and_previous_and_is_done_once(target):
    await released(target, "reverted", "1.0", "2.0", "3.0")
    broken_pid = slot_pid(target, "reverted", Slot.STABLE)

    assert await target.revert("reverted", "2.0") is True
    assert await target.revert("reverted", "2.0") is False

    assert await target.stable_version("reverted") == "2.0"
    assert await served_versions(target, "reverted") == {"2.0": 20}
    assert slot_pid(target, "reverted", PREVIOUS) == broken_pid and is_alive(broken_pid)
    window = await target.rollback_window("reverted")
    assert (window.stable, versions(window), window.older, window.warm) == ("2.0", ["1.0"], ["3.0"], ["3.0"])
    assert window.versions[0].env == {"FEATURE": "f1.0"}


async def test_a_late_traffic_change_of_the_release_cannot_undo_a_revert(target):
    """The fence is not touched by a revert: the version reverted from sits in
    `previous`, where no traffic change routes."""
    await released(target, "fenced", "1.0", "2.0")
    await target.revert("fenced", "1.0")
    late = TrafficRequest(ref=ServiceRef(release_id="r2.0", service="fenced"), sequence=1, canary_weight=0,
                          segments_to_canary=False)
    await target.set_traffic(late)
    assert await served_versions(target, "fenced") == {"1.0": 20}
    with pytest.raises(PermanentTargetError, match="no canary"):
        await target.set_traffic(late.model_copy(update={"canary_weight": 50, "sequence": 2}))


async def test_reverting_back_undoes_a_revert_while_the_version_is_warm(target):
    """Named explicitly, the version reverted from can be returned to while it is warm;
    it comes back with its env, and the one it replaces leaves the window in turn."""
    await released(target, "undone", "1.0", "2.0")
    await target.revert("undone", "1.0")
    assert await target.revert("undone", "2.0") is True
    window = await target.rollback_window("undone")
    assert (window.stable, versions(window), window.older, window.warm) == ("2.0", [], ["1.0"], ["1.0"])
    history = json.loads(state_file(target, "undone").read_text())["history"]["versions"]
    assert history[0]["env"] == {"FEATURE": "f2.0"}


async def test_a_revert_to_a_version_that_is_not_warm_is_refused_saying_why(target):
    await released(target, "cold", "1.0", "2.0", "3.0", "4.0")
    stable_before = await target.stable_version("cold")
    with pytest.raises(PermanentTargetError, match="2.0 of cold is no longer warm"):
        await target.revert("cold", "2.0")
    with pytest.raises(PermanentTargetError, match="1.0 of cold is outside the rollback window"):
        await target.revert("cold", "1.0")
    with pytest.raises(PermanentTargetError, match="9.9 was never promoted for cold"):
        await target.revert("cold", "9.9")
    warm_pid = slot_pid(target, "cold", PREVIOUS)
    os.kill(warm_pid, signal.SIGKILL)
    await wait_until(lambda: not is_alive(warm_pid))
    with pytest.raises(PermanentTargetError, match="3.0 of cold is no longer warm"):
        await target.revert("cold", "3.0")
    assert await target.stable_version("cold") == stable_before


async def test_a_cold_revert_runs_the_version_again_and_records_it_newest(target):
    """What the workflow does for a version no longer warm: deploy it with its recorded env, promote."""
    await released(target, "rerun", "1.0", "2.0", "3.0")
    entry = next(entry for entry in (await target.rollback_window("rerun")).versions if entry.version == "1.0")
    await target.deploy("rerun", Slot.CANARY, "1.0", entry.env)
    await target.wait_ready("rerun", Slot.CANARY, "1.0", progress=lambda message: None)
    assert await target.promote("rerun", release_id="revert-1") == "3.0"

    window = await target.rollback_window("rerun")
    assert (window.stable, versions(window), window.warm) == ("1.0", ["3.0", "2.0"], ["3.0"])
    history = json.loads(state_file(target, "rerun").read_text())["history"]["versions"]
    assert history[0] | {"promoted_at": None} == {
        "version": "1.0", "env": {"FEATURE": "f1.0"}, "release_id": "revert-1", "promoted_at": None
    }


async def test_health_asks_the_readiness_of_the_process_running_the_version(target):
    await released(target, "checked", "1.0", "2.0")
    await target.deploy("checked", Slot.CANARY, "3.0", {"GALLERY_READY_DELAY_SECONDS": "3600"})

    assert (await target.health("checked", "2.0")).model_dump() == {
        "version": "2.0", "healthy": True, "detail": "ready in stable"
    }
    assert (await target.health("checked", "1.0")).healthy is True
    async with asyncio.timeout(10):  # until the process answers at all
        while "answered" not in (unready := await target.health("checked", "3.0")).detail:
            await asyncio.sleep(0.05)
    assert not unready.healthy and unready.detail == "/health/ready answered 503"
    assert (await target.health("checked", "9.9")).detail == "not running"

    warm_pid = slot_pid(target, "checked", PREVIOUS)
    os.kill(warm_pid, signal.SIGKILL)
    await wait_until(lambda: not is_alive(warm_pid))
    assert (await target.health("checked", "1.0")).model_dump() == {
        "version": "1.0", "healthy": False, "detail": "not running"
    }


async def test_a_state_file_from_before_the_history_loads_and_its_first_promote_keeps_the_old_stable(target):
    await released(target, "legacy", "1.0")
    state = json.loads(state_file(target, "legacy").read_text())
    state_file(target, "legacy").write_text(json.dumps({"slots": state["slots"], "traffic_fence": None}))
    assert (await target.rollback_window("legacy")).stable == "1.0"

    await release(target, "legacy", "2.0")

    window = await target.rollback_window("legacy")
    assert (window.stable, versions(window)) == ("2.0", ["1.0"])
    assert window.versions[0].env == {"FEATURE": "f1.0"}
