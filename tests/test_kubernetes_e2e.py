"""The kubernetes target against a real cluster: the example shoot-service manifests
applied into throwaway namespaces, then staging, canary, traffic, promote and retire.

Runs only when KUBECONFIG names a cluster and PIPELINE_E2E_IMAGE names an image
repository whose tags PIPELINE_E2E_FROM and PIPELINE_E2E_TO serve /health/ready and
/health/live on port 8080. The cluster needs the CRDs of the router under test
(PIPELINE_K8S_ROUTER: istio, the default, or gateway-api). The namespaces are deleted
afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import utils

from pipeline.kube import Kube, KubeSettings, api_client
from pipeline.models import ServiceRef, Slot, TrafficRequest
from pipeline.targets.kubernetes import KubernetesTarget

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVICE = "shoot-service"
NEEDS = ("KUBECONFIG", "PIPELINE_E2E_IMAGE", "PIPELINE_E2E_FROM", "PIPELINE_E2E_TO")
MISSING = [name for name in NEEDS if not os.environ.get(name)]
REASON = f"end-to-end test skipped: {', '.join(MISSING)} not set (see this module's docstring)"
ROUTING_FILES = {"istio": "istio.yaml", "gateway-api": "gateway-api.yaml"}
CUSTOM_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "HTTPRoute": "httproutes"}

if MISSING:
    print(REASON)
pytestmark = pytest.mark.skipif(bool(MISSING), reason=REASON)


def example_objects(router: str, namespaces: dict[str, str], image: str) -> list[dict[str, Any]]:
    """The shoot-service manifests, moved into the throwaway namespaces."""
    paths = [DEPLOY / "services" / f"{SERVICE}.yaml", DEPLOY / "routing" / ROUTING_FILES[router]]
    docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]
    objects = [doc for doc in docs if doc["metadata"]["name"].startswith(SERVICE)]
    for obj in objects:
        obj["metadata"]["namespace"] = namespaces[obj["metadata"]["namespace"]]
        if obj["kind"] == "Deployment":
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return objects


@pytest.fixture
def target() -> Iterator[KubernetesTarget]:
    suffix = uuid.uuid4().hex[:6]
    namespaces = {"photos": f"e2e-{suffix}", "photos-staging": f"e2e-{suffix}-staging"}
    router = os.environ.get("PIPELINE_K8S_ROUTER", "istio")
    settings = KubeSettings(namespace=namespaces["photos"], staging_namespace=namespaces["photos-staging"],
                            kubeconfig=os.environ["KUBECONFIG"], context=os.environ.get("PIPELINE_K8S_CONTEXT"),
                            router=router, rollout_timeout_seconds=300)
    client = api_client(settings)
    kube = Kube(client, settings)
    for namespace in namespaces.values():
        kube.core.create_namespace({"metadata": {"name": namespace}})
    try:
        image = f"{os.environ['PIPELINE_E2E_IMAGE']}:{os.environ['PIPELINE_E2E_FROM']}"
        for obj in example_objects(router, namespaces, image):
            if obj["kind"] in CUSTOM_PLURALS:
                group, version = obj["apiVersion"].split("/")
                kube.custom.create_namespaced_custom_object(
                    group, version, obj["metadata"]["namespace"], CUSTOM_PLURALS[obj["kind"]], obj)
            else:
                utils.create_from_dict(client, obj)
        yield KubernetesTarget(kube)
    finally:
        for namespace in namespaces.values():
            kube.core.delete_namespace(namespace)


async def test_release_on_a_real_cluster(target: KubernetesTarget):
    version, old = os.environ["PIPELINE_E2E_TO"], os.environ["PIPELINE_E2E_FROM"]
    await target.wait_ready(SERVICE, Slot.STABLE, old, print)
    assert (await target.preflight(SERVICE, [])).stable_version == old

    for slot in (Slot.STAGING, Slot.CANARY):
        assert await target.deploy(SERVICE, slot, version, {"E2E": "1"})
        await target.wait_ready(SERVICE, slot, version, print)
    ref = ServiceRef(release_id="e2e", service=SERVICE, target="kubernetes")
    assert await target.set_traffic(TrafficRequest(ref=ref, canary_weight=50, segments_to_canary=True,
                                                   canary_segments=["internal-team"]))
    assert await target.promote(SERVICE) == old
    assert await target.stable_version(SERVICE) == version
    assert await target.retire(SERVICE, old)
    assert await target.stop(SERVICE, Slot.STAGING)
