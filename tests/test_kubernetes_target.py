"""The kubernetes target through the real `kubernetes` client, over real HTTP, against
the API server double (tests/helpers/k8s_double.py): what each operation changes, that a
repeat changes nothing, retries, deadlines and pre-flight messages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pipeline.errors import PermanentTargetError, TargetError
from pipeline.kube import KubeSettings, api_client
from pipeline.models import ServiceRef, Slot, TrafficRequest, VersionHealth
from pipeline.targets.deployments import tag_of, with_tag
from pipeline.targets.history import History, promoted, reverted
from pipeline.targets.kubernetes import KubernetesTarget
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import IMAGE, PRODUCTION, SERVICE, STAGING, target_on

SEGMENTS = ["beta-photographer", "internal-team"]


@pytest.fixture
def target(kube_double: KubeDouble, tmp_path) -> KubernetesTarget:
    return target_on(kube_double, tmp_path)


def traffic(weight: int, segments: bool = True) -> TrafficRequest:
    return TrafficRequest(
        ref=ServiceRef(release_id="r1", service=SERVICE, target="kubernetes"),
        canary_weight=weight, segments_to_canary=segments, canary_segments=SEGMENTS,
    )


def container(kube_double: KubeDouble, namespace: str, name: str = SERVICE) -> dict[str, Any]:
    return kube_double.get("deployments", namespace, name)["spec"]["template"]["spec"]["containers"][0]


def replicas(kube_double: KubeDouble, name: str) -> int | None:
    deployment = kube_double.get("deployments", PRODUCTION, name)
    return deployment["spec"]["replicas"] if deployment else None


def http_routes(kube_double: KubeDouble) -> list[dict[str, Any]]:
    return kube_double.get("virtualservices", PRODUCTION, SERVICE)["spec"]["http"]


def weights(route: dict[str, Any]) -> dict[str, int]:
    return {entry["destination"]["subset"]: entry["weight"] for entry in route["route"]}


async def run_canary(target: KubernetesTarget, version: str = "2.0.0") -> None:
    assert await target.deploy(SERVICE, Slot.CANARY, version, {"FEATURE_X": "on"})
    await target.wait_ready(SERVICE, Slot.CANARY, version, lambda message: None)


def test_worker_settings_choose_routers_per_service_and_reject_bad_configuration(tmp_path):
    settings = KubeSettings.from_env({"PIPELINE_K8S_SERVICE_ROUTERS": "gallery=gateway-api, shoot=istio"})
    assert (settings.router_of("gallery"), settings.router_of("shoot"), settings.router_of("other")) == (
        "gateway-api", "istio", "istio")
    with pytest.raises(PermanentTargetError, match="router 'linkerd' is not one of istio, gateway-api"):
        KubeSettings.from_env({"PIPELINE_K8S_ROUTER": "linkerd"})
    with pytest.raises(PermanentTargetError, match="Kubernetes configuration is unusable"):
        api_client(KubeSettings(kubeconfig=str(tmp_path / "missing")))


def test_image_tags():
    assert with_tag("registry.example:5000/photos/gallery:1.0.0", "2.0.0") == "registry.example:5000/photos/gallery:2.0.0"
    assert with_tag("gallery@sha256:abc", "2.0.0") == "gallery:2.0.0"
    assert tag_of("registry.example:5000/photos/gallery") is None


async def test_staging_deploy_sets_image_and_env_waits_for_rollout_and_repeats_as_no_op(kube_double, target):
    messages: list[str] = []
    assert await target.deploy(SERVICE, Slot.STAGING, "2.0.0", {"FEATURE_X": "on", "DB_PASSWORD": "secret://DB_PASSWORD"})
    await target.wait_ready(SERVICE, Slot.STAGING, "2.0.0", messages.append)

    staged = container(kube_double, STAGING)
    assert staged["image"] == f"{IMAGE}:2.0.0"
    assert staged["env"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "FEATURE_X", "value": "on"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "gallery-secrets", "key": "DB_PASSWORD"}}},
    ]
    assert staged["readinessProbe"]["httpGet"]["path"] == "/health/ready"  # strategic merge kept the rest
    assert messages and "not yet observed" in messages[0]
    writes = len(kube_double.writes("deployments"))
    assert not await target.deploy(SERVICE, Slot.STAGING, "2.0.0", {"FEATURE_X": "on", "DB_PASSWORD": "secret://DB_PASSWORD"})
    assert len(kube_double.writes("deployments")) == writes
    assert container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:1.0.0"


async def test_stopped_staging_scales_back_up_on_the_next_deploy(kube_double, target):
    assert await target.stop(SERVICE, Slot.STAGING)
    assert not await target.stop(SERVICE, Slot.STAGING)
    assert kube_double.get("deployments", STAGING, SERVICE)["spec"]["replicas"] == 0
    assert await target.deploy(SERVICE, Slot.STAGING, "2.0.0", {})
    assert kube_double.get("deployments", STAGING, SERVICE)["spec"]["replicas"] == 1


async def test_canary_is_the_stable_template_with_the_new_image_and_track_label(kube_double, target):
    await run_canary(target)
    canary = kube_double.get("deployments", PRODUCTION, f"{SERVICE}-canary")
    assert canary["metadata"]["labels"] == {"app": SERVICE, "track": "canary"}
    assert canary["spec"]["selector"]["matchLabels"] == {"app": SERVICE, "track": "canary"}
    assert canary["spec"]["template"]["metadata"]["labels"]["track"] == "canary"
    assert canary["spec"]["replicas"] == 1
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary")["image"] == f"{IMAGE}:2.0.0"
    assert not await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"FEATURE_X": "on"})
    assert [method for method, _, _ in kube_double.writes("deployments")] == ["POST"]


async def test_traffic_sets_weights_and_segment_route_and_keeps_others_fields(kube_double, target):
    await run_canary(target)
    assert await target.set_traffic(traffic(10))
    segments, admin, primary = http_routes(kube_double)

    assert segments["name"] == "canary-segments"
    assert segments["match"] == [{"headers": {"x-user-type": {"exact": s}}} for s in SEGMENTS]
    assert segments["route"] == [{"destination": {"host": SERVICE, "subset": "canary"}}]
    assert admin["name"] == "admin"
    assert primary["timeout"] == "5s" and weights(primary) == {"stable": 90, "canary": 10}
    spec = kube_double.get("virtualservices", PRODUCTION, SERVICE)["spec"]
    assert spec["hosts"] == [SERVICE] and spec["gateways"] == ["mesh"]
    assert [content for method, path, content, _ in kube_double.requests if method == "PATCH" and "virtualservices" in path] == [
        "application/merge-patch+json"
    ]

    assert not await target.set_traffic(traffic(10))
    assert len(kube_double.writes("virtualservices")) == 1


async def test_traffic_to_a_canary_that_does_not_run_is_refused(target):
    with pytest.raises(PermanentTargetError, match="no ready canary"):
        await target.set_traffic(traffic(10))


async def test_rollback_sends_all_traffic_to_stable_then_scales_canary_to_zero(kube_double, target):
    await run_canary(target)
    await target.set_traffic(traffic(50))

    assert await target.set_traffic(traffic(0, segments=False))
    assert await target.stop(SERVICE, Slot.CANARY)
    assert not await target.stop(SERVICE, Slot.CANARY)

    assert [route["name"] for route in http_routes(kube_double)] == ["admin", "primary"]
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}
    assert replicas(kube_double, f"{SERVICE}-canary") == 0
    assert replicas(kube_double, SERVICE) == 4 and container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:1.0.0"
    assert not [write for write in kube_double.writes("deployments") if write[1].endswith(f"/{SERVICE}")]


def annotation(kube_double: KubeDouble, name: str, key: str) -> str | None:
    deployment = kube_double.get("deployments", PRODUCTION, name)
    return (deployment["metadata"].get("annotations") or {}).get(f"release-pipeline.io/{key}")


def steps(kube_double: KubeDouble, since: int) -> list[str]:
    """The writes after the first `since`: `route <canary weight>`, or the Deployment patched."""
    return [
        f"route {weights(body['spec']['http'][-1]).get('canary', 0)}" if "virtualservices" in path
        else f"{method} {path.rsplit('/', 1)[-1]}"
        for method, path, body in kube_double.writes("")[since:]
    ]


async def release_and_promote(target: KubernetesTarget, version: str = "2.0.0", **promotion: Any) -> str | None:
    await run_canary(target, version)
    await target.set_traffic(traffic(100))
    return await target.promote(SERVICE, **promotion)


async def test_promote_makes_the_canary_stable_and_keeps_the_previous_version_warm(kube_double, target):
    await run_canary(target)
    await target.set_traffic(traffic(100))
    before = len(kube_double.writes(""))

    assert await target.promote(SERVICE) == "1.0.0"
    assert steps(kube_double, before) == [
        "PATCH gallery-canary", "route 100", "PATCH gallery", "route 0", "PATCH gallery-canary"]
    stable = kube_double.get("deployments", PRODUCTION, SERVICE)
    assert container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:2.0.0"
    assert container(kube_double, PRODUCTION)["env"] == [
        {"name": "LOG_LEVEL", "value": "info"}, {"name": "FEATURE_X", "value": "on"}]
    assert stable["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert annotation(kube_double, SERVICE, "previous-version") == "1.0.0"
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}
    assert replicas(kube_double, f"{SERVICE}-canary") == 4
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary") == {
        **container(kube_double, PRODUCTION), "image": f"{IMAGE}:1.0.0", "env": [{"name": "LOG_LEVEL", "value": "info"}]}
    assert annotation(kube_double, f"{SERVICE}-canary", "role") == "warm"
    assert await target.stable_version(SERVICE) == "2.0.0"
    assert (await target.rollback_window(SERVICE)).warm == ["1.0.0"]

    writes = len(kube_double.writes(""))
    assert await target.promote(SERVICE) == "1.0.0"  # a retry after success changes nothing
    assert len(kube_double.writes("")) == writes


async def test_promote_retried_after_a_failed_stable_rollout_converges(kube_double, target):
    kube_double.stuck.add(SERVICE)
    with pytest.raises(TargetError, match="rollout of Deployment prod/gallery"):
        await release_and_promote(target)
    assert weights(http_routes(kube_double)[-1]) == {"canary": 100}  # the new version serves meanwhile

    kube_double.recover(PRODUCTION, SERVICE)
    assert await target.promote(SERVICE) == "1.0.0"
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}
    assert container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:2.0.0"
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary")["image"] == f"{IMAGE}:1.0.0"


async def test_retire_deletes_the_warm_version_and_forgets_it(kube_double, target):
    await release_and_promote(target)
    assert not await target.retire(SERVICE, "2.0.0")  # stable: not for retirement

    assert await target.retire(SERVICE, "1.0.0")
    assert kube_double.get("deployments", PRODUCTION, f"{SERVICE}-canary") is None
    assert annotation(kube_double, SERVICE, "previous-version") is None
    assert annotation(kube_double, SERVICE, "previous-container") is None
    assert not await target.retire(SERVICE, "1.0.0")
    window = await target.rollback_window(SERVICE)
    assert [known.version for known in window.versions] == ["1.0.0"] and window.warm == []
    assert await target.promote(SERVICE) is None  # promoted and retired before: nothing to do


async def test_revert_routes_all_traffic_to_the_warm_version_first_then_swaps_back(kube_double, target):
    await release_and_promote(target)
    before = len(kube_double.writes(""))

    assert await target.revert(SERVICE, "1.0.0")
    assert steps(kube_double, before) == ["route 100", "PATCH gallery", "route 0", "PATCH gallery-canary"]
    assert container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:1.0.0"
    assert container(kube_double, PRODUCTION)["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary")["image"] == f"{IMAGE}:2.0.0"
    assert {"name": "FEATURE_X", "value": "on"} in container(kube_double, PRODUCTION, f"{SERVICE}-canary")["env"]
    assert replicas(kube_double, f"{SERVICE}-canary") == 4
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}
    window = await target.rollback_window(SERVICE)
    assert (window.stable, window.versions, window.older, window.warm) == ("1.0.0", [], ["2.0.0"], ["2.0.0"])

    writes = len(kube_double.writes(""))
    assert not await target.revert(SERVICE, "1.0.0")
    assert len(kube_double.writes("")) == writes


async def test_revert_retried_after_a_failed_stable_rollout_converges(kube_double, target):
    await release_and_promote(target)
    kube_double.stuck.add(SERVICE)
    with pytest.raises(TargetError, match="rollout of Deployment prod/gallery"):
        await target.revert(SERVICE, "1.0.0")
    assert weights(http_routes(kube_double)[-1]) == {"canary": 100}  # the warm version serves

    kube_double.recover(PRODUCTION, SERVICE)
    assert await target.revert(SERVICE, "1.0.0")
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}
    assert container(kube_double, PRODUCTION)["image"] == f"{IMAGE}:1.0.0"
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary")["image"] == f"{IMAGE}:2.0.0"
    assert annotation(kube_double, f"{SERVICE}-canary", "role") == "warm"


async def test_revert_to_a_version_that_is_not_warm_is_refused(kube_double, target):
    with pytest.raises(PermanentTargetError, match="gallery 0.9.0 is not warm: no canary Deployment exists"):
        await target.revert(SERVICE, "0.9.0")
    await run_canary(target)
    with pytest.raises(PermanentTargetError, match="runs 2.0.0, a release's candidate"):
        await target.revert(SERVICE, "2.0.0")
    await target.set_traffic(traffic(100))
    await target.promote(SERVICE)
    with pytest.raises(PermanentTargetError, match="the warm version is 1.0.0"):
        await target.revert(SERVICE, "0.9.0")
    await target.retire(SERVICE, "1.0.0")
    writes = len(kube_double.writes(""))
    with pytest.raises(PermanentTargetError, match="gallery 1.0.0 is not warm"):
        await target.revert(SERVICE, "1.0.0")
    assert len(kube_double.writes("")) == writes


async def test_rollback_window_keeps_the_release_env_of_the_versions_it_holds(kube_double, target):
    await release_and_promote(target, keep=1, release_id="r-2")
    assert await target.deploy(SERVICE, Slot.CANARY, "3.0.0", {"DB_PASSWORD": "secret://DB_PASSWORD"})
    assert container(kube_double, PRODUCTION, f"{SERVICE}-canary")["env"] == [  # stable's env, not the warm one's
        {"name": "LOG_LEVEL", "value": "info"}, {"name": "FEATURE_X", "value": "on"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "gallery-secrets", "key": "DB_PASSWORD"}}}]
    await target.wait_ready(SERVICE, Slot.CANARY, "3.0.0", lambda message: None)
    await target.set_traffic(traffic(100))
    assert await target.promote(SERVICE, release_id="r-3", keep=1) == "2.0.0"

    window = await target.rollback_window(SERVICE)
    assert window.stable == "3.0.0" and window.older == ["1.0.0"] and window.warm == ["2.0.0"]
    [previous] = window.versions
    assert (previous.version, previous.env, previous.release_id) == ("2.0.0", {"FEATURE_X": "on"}, "r-2")
    assert "DB_PASSWORD" in annotation(kube_double, SERVICE, "history")  # the reference, never a value


async def test_a_release_step_never_routes_traffic_to_the_warm_version(kube_double, target):
    await release_and_promote(target)
    with pytest.raises(PermanentTargetError, match="runs the warm previous version 1.0.0"):
        await target.set_traffic(traffic(25))
    assert weights(http_routes(kube_double)[-1]) == {"stable": 100}


def test_history_is_bounded_in_versions_names_and_size():
    history = History()
    for number in range(30):
        history = promoted(history, f"1.{number}.0", {}, f"r-{number}", f"1.{number - 1}.0" if number else None, 2)
    assert [known.version for known in history.versions] == ["1.29.0", "1.28.0", "1.27.0"]
    assert history.older == [f"1.{number}.0" for number in range(26, 6, -1)]

    big = {f"VAR_{index}": "x" * 4000 for index in range(10)}
    for version in ("2.0.0", "3.0.0"):
        history = promoted(history, version, big, "r", None, 2)
    assert [known.version for known in history.versions] == ["3.0.0"] and history.older[:2] == ["2.0.0", "1.29.0"]

    history = reverted(promoted(History(), "2.0.0", {}, "r", "1.0.0", 2), "1.0.0", "2.0.0")
    assert [known.version for known in history.versions] == ["1.0.0"] and history.older == ["2.0.0"]


async def test_health_reads_the_deployments_that_run_the_version(kube_double, target):
    assert (await target.health(SERVICE, "1.0.0")).healthy
    assert await target.health(SERVICE, "0.9.0") == VersionHealth(version="0.9.0", healthy=False, detail="not running")

    kube_double.stuck.add(f"{SERVICE}-canary")
    await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {})
    sick = await target.health(SERVICE, "2.0.0")
    assert not sick.healthy and sick.detail.startswith("Deployment prod/gallery-canary: 0 of 1 updated replicas available")

    await target.stop(SERVICE, Slot.CANARY)
    assert await target.health(SERVICE, "2.0.0") == VersionHealth(
        version="2.0.0", healthy=False, detail="Deployment prod/gallery-canary: scaled to zero")


async def test_the_warm_version_is_healthy_while_its_pods_are_ready(kube_double, target):
    await release_and_promote(target)
    assert await target.health(SERVICE, "1.0.0") == VersionHealth(
        version="1.0.0", healthy=True, detail="Deployment prod/gallery-canary: 4 replicas ready")


async def test_conflicts_and_server_errors_are_retried(kube_double, target):
    await run_canary(target)
    kube_double.fail_next(409)
    kube_double.fail_next(500)
    kube_double.fail_next(503)
    assert await target.set_traffic(traffic(25))
    assert weights(http_routes(kube_double)[-1]) == {"stable": 75, "canary": 25}


async def test_an_edit_between_read_and_write_is_kept_and_the_route_rewritten(kube_double, target):
    """Another writer changes the VirtualService after the router read it: the stale
    resourceVersion gets 409, and the retry re-reads, keeping the other writer's edit."""
    await run_canary(target)

    def add_host() -> None:
        live = kube_double.get("virtualservices", PRODUCTION, SERVICE)
        kube_double.put({**live, "spec": {**live["spec"], "hosts": [SERVICE, "gallery.internal"]}})

    kube_double.before_next_patch(add_host)
    assert await target.set_traffic(traffic(25))
    spec = kube_double.get("virtualservices", PRODUCTION, SERVICE)["spec"]
    assert spec["hosts"] == [SERVICE, "gallery.internal"]
    assert weights(spec["http"][-1]) == {"stable": 75, "canary": 25}
    assert len(kube_double.writes("virtualservices")) == 2  # the refused patch and the retried one


async def test_errors_that_persist_fail_with_the_api_message(kube_double, target):
    kube_double.fail_next(500, times=10)
    with pytest.raises(TargetError, match="HTTP 500 injected 500"):
        await target.stable_version(SERVICE)


async def test_stuck_rollout_fails_naming_the_condition(kube_double, target):
    kube_double.stuck.add(SERVICE)
    await target.deploy(SERVICE, Slot.STAGING, "2.0.0", {})
    with pytest.raises(TargetError) as stuck:
        await target.wait_ready(SERVICE, Slot.STAGING, "2.0.0", lambda message: None)
    message = str(stuck.value)
    assert "staging/gallery" in message and "0 of 1 updated replicas available" in message
    assert "Available=False (MinimumReplicasUnavailable" in message and "ProgressDeadlineExceeded" in message


async def test_slow_rollout_fails_at_the_target_deadline_with_progress_meanwhile(kube_double, tmp_path):
    kube_double.rollout_delay = 60
    target = target_on(kube_double, tmp_path)
    target._settings = replace(target._settings, rollout_timeout_seconds=0.3)
    messages: list[str] = []
    await target.deploy(SERVICE, Slot.STAGING, "2.0.0", {})
    with pytest.raises(TargetError, match=r"not complete within 0.3s: generation 2 not yet observed"):
        await target.wait_ready(SERVICE, Slot.STAGING, "2.0.0", messages.append)
    assert messages and all("staging/gallery (2.0.0)" in m for m in messages)


async def test_preflight_reports_stable_version(target):
    report = await target.preflight(SERVICE, [])
    assert report.stable_version == "1.0.0" and report.missing_suites == []


async def test_preflight_names_each_missing_permission(kube_double, target):
    kube_double.denied = {("patch", "virtualservices"), ("create", "deployments")}
    with pytest.raises(PermanentTargetError) as denied:
        await target.preflight(SERVICE, [])
    assert str(denied.value) == (
        "the worker's Kubernetes account may not: create deployments.apps in namespace prod; "
        "patch virtualservices.networking.istio.io in namespace prod"
    )
    assert not kube_double.writes("deployments") and not kube_double.writes("virtualservices")


async def test_preflight_names_a_missing_route(kube_double, target):
    kube_double.denied = set()
    with kube_double._lock:
        del kube_double._objects[("destinationrules", PRODUCTION, SERVICE)]
    with pytest.raises(PermanentTargetError, match="read DestinationRule prod/gallery: not found"):
        await target.preflight(SERVICE, [])


async def test_gateway_api_router_weights_backends_and_matches_headers(kube_double, tmp_path):
    target = target_on(kube_double, tmp_path, router="gateway-api")
    await target.preflight(SERVICE, [])
    await run_canary(target)
    assert await target.set_traffic(traffic(25))
    assert not await target.set_traffic(traffic(25))

    spec = kube_double.get("httproutes", PRODUCTION, SERVICE)["spec"]
    segments, primary = spec["rules"]
    assert segments["matches"][0] == {"headers": [{"type": "Exact", "name": "X-User-Type", "value": SEGMENTS[0]}]}
    assert segments["backendRefs"] == [{"name": f"{SERVICE}-canary", "port": 8080}]
    assert primary["backendRefs"] == [{"name": f"{SERVICE}-stable", "port": 8080, "weight": 75},
                                      {"name": f"{SERVICE}-canary", "port": 8080, "weight": 25}]
    assert spec["parentRefs"] == [{"name": "public"}] and spec["hostnames"] == ["gallery.example.com"]

    assert await target.set_traffic(traffic(0, segments=False))
    assert kube_double.get("httproutes", PRODUCTION, SERVICE)["spec"]["rules"] == [
        {"backendRefs": [{"name": f"{SERVICE}-stable", "port": 8080, "weight": 100},
                         {"name": f"{SERVICE}-canary", "port": 8080, "weight": 0}]}
    ]
