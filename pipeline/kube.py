"""Access to a Kubernetes API server for the kubernetes target and its routers.

The official client blocks, so every call runs in a thread (`asyncio.to_thread`) and
the worker's event loop keeps heartbeating. Calls are retried with backoff on
conflicts (409), throttling (429), server errors (5xx) and dropped connections; a
read-modify-write is retried as a whole, so a 409 on a stale resourceVersion
re-reads before it writes again.

Configuration comes from the worker's environment only: a kubeconfig file and
context, or the pod's service account. Only the API host and the context name are
ever logged, never a token or certificate.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pipeline.catalog import TARGETS, routers_of
from pipeline.errors import NotFound, PermanentTargetError, TargetError

log = structlog.get_logger()

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
"""The client's default patch type for built-in resources is JSON Patch (a list of
operations); the target sends objects, so it always names the content type."""

RETRYABLE_STATUSES = {409, 429, 500, 502, 503, 504}
PERMANENT_STATUSES = {400, 401, 403, 404, 405, 415, 422}
MAX_BACKOFF_SECONDS = 10.0


@dataclass(frozen=True)
class KubeSettings:
    """The worker's Kubernetes configuration, from PIPELINE_K8S_* variables."""

    namespace: str = "default"
    staging_namespace: str = "staging"
    kubeconfig: str | None = None
    context: str | None = None
    router: str = TARGETS["kubernetes"].router
    service_routers: dict[str, str] = field(default_factory=dict)
    rollout_timeout_seconds: float = 480.0
    poll_seconds: float = 2.0
    canary_replicas: int = 1
    cluster_domain: str = "svc.cluster.local"
    attempts: int = 5
    backoff_seconds: float = 0.5

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KubeSettings:
        env = os.environ if environ is None else environ
        settings = cls(
            namespace=env.get("PIPELINE_K8S_NAMESPACE", "default"),
            staging_namespace=env.get("PIPELINE_K8S_STAGING_NAMESPACE", "staging"),
            kubeconfig=env.get("PIPELINE_K8S_KUBECONFIG") or None,
            context=env.get("PIPELINE_K8S_CONTEXT") or None,
            router=env.get("PIPELINE_K8S_ROUTER", TARGETS["kubernetes"].router),
            service_routers=_service_routers(env.get("PIPELINE_K8S_SERVICE_ROUTERS", "")),
            rollout_timeout_seconds=float(env.get("PIPELINE_K8S_ROLLOUT_TIMEOUT_SECONDS", "480")),
            poll_seconds=float(env.get("PIPELINE_K8S_POLL_SECONDS", "2")),
            canary_replicas=int(env.get("PIPELINE_K8S_CANARY_REPLICAS", "1")),
            backoff_seconds=float(env.get("PIPELINE_K8S_BACKOFF_SECONDS", "0.5")),
        )
        routers = routers_of("kubernetes")
        for router in {settings.router, *settings.service_routers.values()}:
            if router not in routers:
                raise PermanentTargetError(f"router {router!r} is not one of {', '.join(routers)}")
        return settings

    def router_of(self, service: str) -> str:
        return self.service_routers.get(service, self.router)


def _service_routers(spec: str) -> dict[str, str]:
    """`svc=istio,other=gateway-api` -> {"svc": "istio", "other": "gateway-api"}."""
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise PermanentTargetError(f"PIPELINE_K8S_SERVICE_ROUTERS {spec!r} is not service=router,...")
    return {service.strip(): router.strip() for service, router in pairs}


def api_client(settings: KubeSettings) -> client.ApiClient:
    """A client for the kubeconfig file/context, or for the pod's service account when
    the worker runs in a cluster and names no kubeconfig."""
    configuration = client.Configuration()
    try:
        if settings.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            config.load_incluster_config(client_configuration=configuration)
            source = "in-cluster service account"
        else:
            config.load_kube_config(
                config_file=settings.kubeconfig,
                context=settings.context,
                client_configuration=configuration,
                persist_config=False,
            )
            source = f"kubeconfig context {settings.context or '(current)'}"
    except (config.ConfigException, OSError) as error:
        raise PermanentTargetError(f"the worker's Kubernetes configuration is unusable: {error}") from None
    log.info("kubernetes.configured", host=configuration.host, source=source)
    return client.ApiClient(configuration)


class Kube:
    """Runs blocking client calls in a thread, retrying what a retry can fix."""

    def __init__(self, api: client.ApiClient, settings: KubeSettings):
        self.settings = settings
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.authorization = client.AuthorizationV1Api(api)
        self.serialize = api.sanitize_for_serialization

    async def call(self, what: str, operation: Callable[[], T]) -> T:
        """Run `operation` (a blocking function) in a thread with retries; `what`
        names it in logs and errors."""
        attempt, delay = 1, self.settings.backoff_seconds
        while True:
            try:
                return await asyncio.to_thread(operation)
            except ApiException as error:
                if error.status not in RETRYABLE_STATUSES or attempt >= self.settings.attempts:
                    raise _translated(what, error) from None
                problem = f"HTTP {error.status}"
            except urllib3.exceptions.HTTPError as error:
                if attempt >= self.settings.attempts:
                    raise TargetError(f"{what}: API server unreachable ({type(error).__name__})") from None
                problem = type(error).__name__
            log.warning("kubernetes.retry", what=what, problem=problem, attempt=attempt, delay=delay)
            await asyncio.sleep(delay)
            attempt, delay = attempt + 1, min(delay * 2, MAX_BACKOFF_SECONDS)

    def get_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)

    def merge_patch_custom(
        self, group: str, version: str, plural: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            group, version, namespace, plural, name, body, _content_type=MERGE_PATCH
        )


def _translated(what: str, error: ApiException) -> TargetError:
    message = _status_message(error)
    if error.status == 404:
        return NotFound(f"{what}: not found ({message})")
    if error.status in PERMANENT_STATUSES:
        return PermanentTargetError(f"{what}: HTTP {error.status} {message}")
    return TargetError(f"{what}: HTTP {error.status} {message}")


def _status_message(error: ApiException) -> str:
    """The `message` of the API server's Status answer, or its reason."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
