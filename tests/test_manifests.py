"""The manifests under deploy/: they parse, carry what the kubernetes target relies on
(labels, Services, route names, subsets), the ADR's constraints for the two services,
and RBAC that grants exactly the verbs the target uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.migrations.kubernetes_job import JOB_ACCESS
from pipeline.models import GatesConfig
from pipeline.routers.gateway_api import GatewayApiRouter
from pipeline.routers.istio import IstioRouter
from pipeline.targets.kubernetes import CLUSTER_ACCESS, PRODUCTION_ACCESS, STAGING_ACCESS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
SERVICES = {"shoot-service": 3, "gallery-service": 4}


def load_all() -> list[dict[str, Any]]:
    return [doc for path in sorted(DEPLOY.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = load_all()


def find(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name
             and namespace in (None, d["metadata"].get("namespace"))]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def grants(rules: list[tuple[str, str, tuple[str, ...]]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for group, resource, verbs in rules for verb in verbs}


def role_grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_every_document_names_its_kind_and_place():
    assert len(DOCS) > 20
    for doc in DOCS:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name")
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace"), f"{doc['kind']} {doc['metadata']['name']} has no namespace"


@pytest.mark.parametrize("service,replicas", SERVICES.items())
def test_stable_deployments_are_labelled_probed_and_sized(service: str, replicas: int):
    for namespace in ("photos", "photos-staging"):
        deployment = find("Deployment", service, namespace)
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"] == {"app": service, "track": "stable"}
        container = spec["template"]["spec"]["containers"][0]
        assert container["name"] == service and container["image"].endswith(":1.0.0")
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert find("Deployment", service, "photos")["spec"]["replicas"] == replicas


def test_gallery_never_drops_below_its_minimum():
    strategy = find("Deployment", "gallery-service", "photos")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    budget = find("PodDisruptionBudget", "gallery-service", "photos")["spec"]
    assert budget["minAvailable"] == 2
    assert budget["selector"]["matchLabels"] == {"app": "gallery-service", "track": "stable"}


@pytest.mark.parametrize("service", SERVICES)
def test_services_select_each_track(service: str):
    selectors = {
        name: find("Service", name, "photos")["spec"]["selector"]
        for name in (service, f"{service}-stable", f"{service}-canary")
    }
    assert selectors == {
        service: {"app": service},
        f"{service}-stable": {"app": service, "track": "stable"},
        f"{service}-canary": {"app": service, "track": "canary"},
    }
    assert find("Service", service, "photos-staging")["spec"]["ports"][0]["port"] == 80


@pytest.mark.parametrize("service", SERVICES)
def test_routes_have_what_the_routers_own(service: str):
    primary = find("VirtualService", service, "photos")["spec"]["http"][-1]
    assert primary["name"] == "primary"
    assert primary["route"] == [{"destination": {"host": service, "subset": "stable"}, "weight": 100}]
    subsets = find("DestinationRule", service, "photos")["spec"]["subsets"]
    assert {s["name"]: s["labels"] for s in subsets} == {"stable": {"track": "stable"}, "canary": {"track": "canary"}}
    backends = find("HTTPRoute", service, "photos")["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["port"]) for b in backends] == [(f"{service}-stable", 80), (f"{service}-canary", 80)]


def test_gallery_sessions_are_sticky():
    policy = find("DestinationRule", "gallery-service", "photos")["spec"]["trafficPolicy"]
    assert policy["loadBalancer"]["consistentHash"]["httpCookie"]["name"]


def test_rbac_grants_exactly_the_verbs_the_target_uses():
    production = grants([*PRODUCTION_ACCESS, *IstioRouter.access, *GatewayApiRouter.access, *JOB_ACCESS])
    assert role_grants(find("Role", "release-worker", "photos")) == production
    assert role_grants(find("Role", "release-worker", "photos-staging")) == grants([*STAGING_ACCESS, *JOB_ACCESS])
    namespaces = find("ClusterRole", "release-worker-namespaces")
    assert role_grants(namespaces) == grants(CLUSTER_ACCESS)
    assert namespaces["rules"][0]["resourceNames"] == ["photos", "photos-staging"]


def test_worker_runs_as_its_account_in_the_granted_namespaces():
    subjects = [doc["subjects"] for doc in DOCS if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(subjects) == 3
    assert all(s == [{"kind": "ServiceAccount", "name": "release-worker", "namespace": "release-pipeline"}] for s in subjects)
    pod = find("Deployment", "release-worker", "release-pipeline")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "release-worker"
    env = {entry["name"]: entry.get("value") for entry in pod["containers"][0]["env"]}
    assert (env["PIPELINE_K8S_NAMESPACE"], env["PIPELINE_K8S_STAGING_NAMESPACE"]) == ("photos", "photos-staging")


def test_worker_reads_a_valid_gates_file_and_webhook_urls_from_a_secret():
    gates = GatesConfig.model_validate(json.loads(find("ConfigMap", "release-gates", "release-pipeline")["data"]["gates.json"]))
    pod = find("Deployment", "release-worker", "release-pipeline")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {entry["name"]: entry for entry in container["env"]}
    mount = container["volumeMounts"][0]
    assert env["PIPELINE_GATES_FILE"]["value"] == f"{mount['mountPath']}/gates.json"
    assert {"name": mount["name"], "configMap": {"name": "release-gates"}} in pod["volumes"]
    for webhook in gates.defaults.webhooks:
        assert "secretKeyRef" in env[webhook.url_env]["valueFrom"]
    assert gates.defaults.approvals["production"].min_approvals == 2
