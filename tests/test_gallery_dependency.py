"""The sample service's dependency on the new shoot API (pipeline/gallery/dependency.py):
the pure parts, then real sample-service processes of the local target behind a real
Traefik, where a gallery that needs the API fails until shoot-service 2.0.0 is stable."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import httpx
import pytest

from pipeline.gallery.dependency import (
    NEEDS_VARIABLE,
    NEW_API_PATH,
    ROUTER_VARIABLE,
    Dependency,
    answered,
    dependency_from,
    router_environment,
    serves_new_api,
    version_tuple,
)
from pipeline.models import Slot
from pipeline.targets.local import LocalTarget
from tests.helpers.local import environ_of, local_environment


class Recorder:
    def __init__(self) -> None:
        self.replies: list[tuple[HTTPStatus, object]] = []

    def _json(self, status: HTTPStatus, body: object) -> None:
        self.replies.append((status, body))


class Fixed(Dependency):
    """A dependency whose answer is given, and counted when asked."""

    def __init__(self, answer: str | None) -> None:
        super().__init__("shoot-service", "http://router")
        self.answer, self.asked = answer, 0

    def _ask(self) -> str | None:
        self.asked += 1
        return self.answer


@pytest.mark.parametrize(("version", "numbers"), [("2.0.0", (2, 0, 0)), ("1.10.3-rc1", (1, 10, 3)), ("v2", ()), ("2.x", (2,))])
def test_version_tuple(version, numbers):
    assert version_tuple(version) == numbers


def test_the_new_api_is_served_from_2_0_0():
    assert [serves_new_api(v) for v in ("1.9.9", "2.0.0", "2.0.1", "10.0.0", "2.0.0-rc1", "snapshot")] == [
        False, True, True, True, True, False
    ]
    old, new = Recorder(), Recorder()
    assert answered(old, NEW_API_PATH, "1.0.0", None) is False and old.replies == []
    assert answered(new, NEW_API_PATH, "2.0.0", None) is True and new.replies[0][0] is HTTPStatus.OK


def test_a_dependency_comes_from_the_env_and_only_then_gets_the_router():
    assert dependency_from({}) is None and dependency_from({NEEDS_VARIABLE: " "}) is None
    dependency = dependency_from({NEEDS_VARIABLE: "shoot-service", ROUTER_VARIABLE: "http://127.0.0.1:1"})
    assert (dependency.service, dependency.router_url) == ("shoot-service", "http://127.0.0.1:1")
    assert router_environment({}, "http://r") == {}
    assert router_environment({NEEDS_VARIABLE: "shoot-service"}, "http://r") == {ROUTER_VARIABLE: "http://r"}
    assert "PIPELINE_ROUTER_URL is not set" in dependency_from({NEEDS_VARIABLE: "shoot-service"}).problem()


def test_a_missing_dependency_refuses_requests_but_not_probes_and_is_asked_once_per_ttl():
    missing = Fixed("shoot-service does not serve it")
    handler = Recorder()
    assert answered(handler, "/api/photos", "2.0.0", missing) is True
    assert handler.replies[0][0] is HTTPStatus.BAD_GATEWAY and "new shoot API is missing" in handler.replies[0][1]["error"]
    assert answered(handler, "/health/ready", "2.0.0", missing) is False
    assert answered(handler, "/", "2.0.0", missing) is True
    assert missing.asked == 1, "steady load does not double the dependency's traffic"
    assert answered(Recorder(), "/api/photos", "2.0.0", Fixed(None)) is False


def test_an_unreachable_router_is_a_problem_not_a_crash():
    assert "unreachable" in Dependency("shoot-service", "http://127.0.0.1:9").problem()


@pytest.fixture(scope="module")
async def target(tmp_path_factory):
    env = local_environment(tmp_path_factory.mktemp("dependency"))
    yield LocalTarget(env, ready_timeout_seconds=20)
    await env.stop_all()


async def install(target: LocalTarget, service: str, version: str, env: dict[str, str] | None = None) -> None:
    await target.deploy(service, Slot.CANARY, version, env or {})
    await target.wait_ready(service, Slot.CANARY, version, progress=lambda message: None)
    await target.promote(service, release_id=f"{service}-{version}")


async def test_a_gallery_that_needs_the_new_shoot_api_fails_until_shoot_service_2_0_0_is_stable(target):
    await install(target, "shoot-service", "1.0.0")
    await target.deploy("gallery", Slot.CANARY, "2.0.0", {NEEDS_VARIABLE: "shoot-service"})
    await target.wait_ready("gallery", Slot.CANARY, "2.0.0", progress=lambda message: None)
    state = json.loads((target.env.services_dir / "gallery.json").read_text())
    assert environ_of(state["slots"][Slot.CANARY]["pid"])[ROUTER_VARIABLE] == target.env.http_url

    async with httpx.AsyncClient(base_url=target.endpoint("gallery", Slot.CANARY), timeout=5) as client:
        refused = await client.get("/api/photos")
        assert refused.status_code == 502 and "does not serve /api/v2/shoots (answered 404)" in refused.json()["error"]
        assert (await client.get("/health/ready")).status_code == 200, "a probe is not the dependency's business"

        await install(target, "shoot-service", "2.0.0")
        async with asyncio.timeout(10):
            while (await client.get("/api/photos")).status_code != 200:
                await asyncio.sleep(0.1)
