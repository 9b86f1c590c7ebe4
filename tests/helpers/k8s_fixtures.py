"""The objects a platform team installs for one service (as deploy/ does), seeded into
the API server double, and a kubernetes target pointed at the double."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.kube import Kube, KubeSettings, api_client
from pipeline.targets.kubernetes import KubernetesTarget
from tests.helpers.k8s_double import KubeDouble

SERVICE = "gallery"
PRODUCTION, STAGING = "prod", "staging"
IMAGE = "registry.example:5000/photos/gallery"


def deployment(namespace: str, replicas: int, track: str = "stable") -> dict[str, Any]:
    labels = {"app": SERVICE, "track": track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SERVICE, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": SERVICE,
                    "image": f"{IMAGE}:1.0.0",
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8080}},
                }]},
            },
        },
    }


def routing_objects() -> list[dict[str, Any]]:
    metadata = {"name": SERVICE, "namespace": PRODUCTION}
    return [
        {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": metadata,
            "spec": {"hosts": [SERVICE], "gateways": ["mesh"], "http": [
                {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                 "route": [{"destination": {"host": "admin-ui"}}]},
                {"name": "primary", "timeout": "5s",
                 "route": [{"destination": {"host": SERVICE, "subset": "stable"}, "weight": 100}]},
            ]},
        },
        {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": metadata,
            "spec": {"host": SERVICE,
                     "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpCookie": {"name": "session", "ttl": "0s"}}}},
                     "subsets": [{"name": "stable", "labels": {"track": "stable"}},
                                 {"name": "canary", "labels": {"track": "canary"}}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata,
            "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["gallery.example.com"], "rules": [
                {"backendRefs": [{"name": f"{SERVICE}-stable", "port": 8080, "weight": 100}]},
            ]},
        },
    ]


def seed(double: KubeDouble) -> None:
    for obj in [deployment(PRODUCTION, 4), deployment(STAGING, 1), *routing_objects()]:
        double.put(obj)


def worker_env(double: KubeDouble, directory: Path, router: str = "istio") -> dict[str, str]:
    """The worker environment that points the kubernetes target at the double."""
    return {
        "PIPELINE_K8S_KUBECONFIG": str(double.kubeconfig(directory)),
        "PIPELINE_K8S_CONTEXT": "double",
        "PIPELINE_K8S_NAMESPACE": PRODUCTION,
        "PIPELINE_K8S_STAGING_NAMESPACE": STAGING,
        "PIPELINE_K8S_ROUTER": router,
        "PIPELINE_K8S_POLL_SECONDS": "0.02",
        "PIPELINE_K8S_ROLLOUT_TIMEOUT_SECONDS": "3",
        "PIPELINE_K8S_BACKOFF_SECONDS": "0.01",
    }


def target_on(double: KubeDouble, directory: Path, router: str = "istio") -> KubernetesTarget:
    settings = KubeSettings.from_env(worker_env(double, directory, router))
    return KubernetesTarget(Kube(api_client(settings), settings))
