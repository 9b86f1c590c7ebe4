"""The kubernetes deploy target: versions run as Deployments, and an Istio
VirtualService or a Gateway API HTTPRoute splits traffic between them.

Where each slot runs (all names are the service's name, `<svc>`):

- staging: Deployment `<svc>` in the staging namespace; a deploy sets its image and
  env and scales it back up, stop() scales it to zero;
- stable: Deployment `<svc>` (labels app=<svc>, track=stable) in the production
  namespace, installed by the platform team (see deploy/). A release never scales it
  down, so a rollback is only a routing change;
- canary: Deployment `<svc>-canary` (labels app=<svc>, track=canary), made from the
  stable Deployment's pod template with the new image, beside stable. After a
  promotion it is the warm slot: it runs the previous stable version, at stable's
  replicas, without traffic, so that a revert starts with a routing change.

A release's version is the image tag; the image repository is the stable
Deployment's. promote() scales the canary up to stable's size and routes all traffic
to it, rolls the stable Deployment to the canary's image and env with the
Deployment's own rolling-update strategy (maxUnavailable 0 and the
PodDisruptionBudget are the service's constraints), routes all traffic to stable, and
then points the canary Deployment at the version stable replaced: warm until
retire() deletes it, or until revert() swaps the two back the same way
(pipeline/targets/kubernetes_promotion.py). Annotations of the stable Deployment
remember the replaced version and its container (`release-pipeline.io/previous-*`)
and the promotion history behind the rollback window (`release-pipeline.io/history`,
pipeline/targets/history.py); the canary Deployment's say whether it is a release's
candidate or the warm previous version, and what env the candidate's release asked for.

Every method reads the live objects and only writes what differs, so a retry after
a crash finds the work done. Environment values `secret://NAME` become references to
key NAME of the Secret `<svc>-secrets`: secret values never enter a pod spec. An env
is always written whole (a strategic merge patch that replaces the list), so the
variables of one version never linger in another's pods. A release's env is checked
again here (pipeline/decisions/service_env.py), so a request recorded before those
rules tightened cannot put a loader variable into a pod.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException

from pipeline.decisions.service_env import env_problems
from pipeline.errors import NotFound, PermanentTargetError
from pipeline.kube import STRATEGIC_MERGE_PATCH, Kube, KubeSettings, api_client
from pipeline.models import PreflightReport, Slot, TrafficRequest
from pipeline.routers import router_for
from pipeline.routers.base import Split
from pipeline.routers.owned import OwnedEntries
from pipeline.suites import load_catalog, missing_suites
from pipeline.targets.base import Progress, split_of
from pipeline.targets.deployments import (
    REPLICAS_ANNOTATION,
    WARM,
    Deployment,
    annotations,
    canary_deployment,
    candidate_marks,
    clean,
    container_change,
    main_container,
    merged_env,
    past_progress_deadline,
    role,
    rollout_problem,
    runs,
    with_tag,
)
from pipeline.targets.kubernetes_promotion import Promoting

log = structlog.get_logger()

PRODUCTION_ACCESS = [("apps", "deployments", ("get", "create", "patch", "delete"))]
STAGING_ACCESS = [("apps", "deployments", ("get", "patch"))]
CLUSTER_ACCESS = [("", "namespaces", ("get",))]
"""(api group, resource, verbs) the target uses, besides its router's. deploy/rbac.yaml
grants exactly these; tests/test_manifests.py checks that it does."""


class KubernetesTarget(Promoting):
    name = "kubernetes"

    def __init__(self, kube: Kube):
        self._kube = kube
        self._settings = kube.settings

    @classmethod
    def from_env(cls) -> KubernetesTarget:
        settings = KubeSettings.from_env()
        return cls(Kube(api_client(settings), settings))

    async def preflight(self, service: str, suites: list[str]) -> PreflightReport:
        await self._check_access(service)
        for namespace in {self._settings.namespace, self._settings.staging_namespace}:
            await self._kube.call(f"read Namespace {namespace}", lambda: self._kube.core.read_namespace(namespace))
        await self._read(self._settings.staging_namespace, service)
        stable = await self._read(self._settings.namespace, service)
        await self._router(service).check(service)
        try:
            missing = missing_suites(service, suites, load_catalog())
        except (OSError, ValueError) as error:
            raise PermanentTargetError(f"the worker's suite catalog is unreadable: {error}") from error
        return PreflightReport(stable_version=runs(stable, service), missing_suites=missing)

    async def deploy(self, service: str, slot: Slot, version: str, env: dict[str, str]) -> bool:
        if slot not in (Slot.STAGING, Slot.CANARY):
            raise PermanentTargetError(f"deploy runs a version in staging or canary, not {slot}")
        if problems := env_problems(env):
            raise PermanentTargetError(f"the kubernetes target refuses the release's env: {'; '.join(problems)}")
        stable = await self._read(self._settings.namespace, service)
        image = with_tag(main_container(stable, service)["image"], version)
        if slot is Slot.STAGING:
            changed = await self._deploy_staging(service, image, env)
        else:
            changed = await self._deploy_canary(service, stable, image, env)
        log.info("slot.deployed", service=service, slot=slot.value, image=image, env_names=sorted(env),
                 changed=changed)
        return changed

    async def wait_ready(self, service: str, slot: Slot, version: str, progress: Progress) -> None:
        namespace, name = self._location(service, slot)
        deadline = time.monotonic() + self._settings.rollout_timeout_seconds
        while True:
            deployment = await self._read(namespace, name)
            running = runs(deployment, service)
            if running != version:
                raise PermanentTargetError(f"Deployment {namespace}/{name} runs {running}, not {version}")
            problem = rollout_problem(deployment)
            if problem is None:
                return
            stuck = past_progress_deadline(deployment)
            if stuck or time.monotonic() > deadline:
                limit = "past its progress deadline" if stuck else (
                    f"not complete within {self._settings.rollout_timeout_seconds:g}s")
                raise PermanentTargetError(f"rollout of Deployment {namespace}/{name} ({version}) {limit}: {problem}")
            progress(f"waiting for Deployment {namespace}/{name} ({version}): {problem}")
            await asyncio.sleep(self._settings.poll_seconds)

    def endpoint(self, service: str, slot: Slot) -> str:
        """The slot's Service inside the cluster (the worker runs there)."""
        if slot is Slot.STAGING:
            return f"http://{service}.{self._settings.staging_namespace}.{self._settings.cluster_domain}"
        return f"http://{service}-{slot.value}.{self._settings.namespace}.{self._settings.cluster_domain}"

    async def set_traffic(self, request: TrafficRequest) -> bool:
        service, split = request.ref.service, split_of(request)
        if split.needs_canary:
            await self._require_ready_canary(service)
        return await self._route(service, split, release_id=request.ref.release_id)

    async def stop(self, service: str, slot: Slot) -> bool:
        if slot is Slot.STABLE:
            raise PermanentTargetError("a release never scales the stable Deployment down")
        namespace, name = self._location(service, slot)
        deployment = await self._read_optional(namespace, name)
        replicas = (deployment or {}).get("spec", {}).get("replicas", 0)
        if not replicas:
            return False
        await self._patch(namespace, name, {
            "metadata": {"annotations": {REPLICAS_ANNOTATION: str(replicas)}},
            "spec": {"replicas": 0},
        })
        log.info("slot.stopped", service=service, slot=slot.value, deployment=f"{namespace}/{name}")
        return True

    async def stable_version(self, service: str) -> str | None:
        stable = await self._read_optional(self._settings.namespace, service)
        return runs(stable, service) if stable else None

    # --- helpers -------------------------------------------------------------------------

    async def _deploy_staging(self, service: str, image: str, env: dict[str, str]) -> bool:
        namespace = self._settings.staging_namespace
        live = await self._read(namespace, service)
        replicas = live["spec"].get("replicas") or int(annotations(live).get(REPLICAS_ANNOTATION, "1"))
        env_list = merged_env(main_container(live, service).get("env", []), env, service)
        return await self._converge(namespace, service, live, service, image=image, env=env_list, replicas=replicas)

    async def _deploy_canary(self, service: str, stable: Deployment, image: str, env: dict[str, str]) -> bool:
        """The candidate: made from stable's pod template, or an existing canary
        Deployment (a warm previous version, a stopped canary) given stable's env with
        the release's."""
        namespace, name = self._settings.namespace, f"{service}-canary"
        replicas, marks = self._settings.canary_replicas, candidate_marks(env)
        live = await self._read_optional(namespace, name)
        if live is not None:
            env_list = merged_env(main_container(stable, service).get("env", []), env, service)
            return await self._converge(namespace, name, live, service, image=image, env=env_list, replicas=replicas,
                                        marks=marks)
        body = canary_deployment(service, stable, image, env, replicas, marks)
        await self._kube.call(f"create Deployment {namespace}/{name}", _ignoring(
            409, lambda: self._kube.apps.create_namespaced_deployment(namespace, body)))
        return True

    async def _converge(
        self, namespace: str, name: str, live: Deployment, service: str, *, image: str, env: list[dict[str, Any]],
        replicas: int, marks: dict[str, str | None] | None = None,
    ) -> bool:
        """Set image, env (exactly), replicas and annotations (None removes one) of a
        Deployment; False when they already were so."""
        marks = marks or {}
        container = main_container(live, service)
        current = (container["image"], clean(container.get("env", [])), live["spec"].get("replicas"),
                   {key: annotations(live).get(key) for key in marks})
        if current == (image, clean(env), replicas, marks):
            return False
        body: dict[str, Any] = {"spec": {
            "replicas": replicas, "template": {"spec": {"containers": [container_change(container["name"], image, env)]}},
        }}
        if marks:
            body["metadata"] = {"annotations": marks}
        await self._patch(namespace, name, body)
        return True

    async def _require_ready_canary(self, service: str) -> None:
        """A release's traffic goes to its candidate only: never to the warm previous
        version (a forward step retried after the promotion would send traffic back)."""
        namespace, name = self._location(service, Slot.CANARY)
        canary = await self._read_optional(namespace, name)
        if canary is not None and role(canary) == WARM:
            raise PermanentTargetError(f"Deployment {namespace}/{name} runs the warm previous version "
                                       f"{runs(canary, service)}: a release's traffic does not go to it")
        if canary is None or not canary["spec"].get("replicas") or rollout_problem(canary) is not None:
            raise PermanentTargetError(f"{service} has no ready canary (Deployment {namespace}/{name}) to send traffic to")

    async def _check_access(self, service: str) -> None:
        """SelfSubjectAccessReview of every verb the release needs; all denials in one error."""
        denied = []
        for namespace, group, resource, verb in self._required_access(service):
            if not await self._kube.call(f"review access to {verb} {resource}",
                                         lambda: _allowed(self._kube, namespace, group, resource, verb)):
                where = f"named {namespace}" if resource == "namespaces" else f"in namespace {namespace}"
                denied.append(f"{verb} {resource}{'.' + group if group else ''} {where}")
        if denied:
            raise PermanentTargetError("the worker's Kubernetes account may not: " + "; ".join(denied))

    def _required_access(self, service: str) -> list[tuple[str, str, str, str]]:
        production, staging = self._settings.namespace, self._settings.staging_namespace
        scoped = [(production, rule) for rule in [*PRODUCTION_ACCESS, *self._router(service).access]]
        scoped += [(staging, rule) for rule in STAGING_ACCESS]
        scoped += [(namespace, rule) for rule in CLUSTER_ACCESS for namespace in (production, staging)]
        return [(namespace, group, resource, verb) for namespace, (group, resource, verbs) in scoped for verb in verbs]

    async def _route(self, service: str, split: Split, **context: str) -> bool:
        router = self._settings.router_of(service)
        changed = await self._router(service).apply(service, split)
        if changed:
            log.info("traffic.applied", router=router, service=service, canary_weight=split.canary_weight,
                     segments_to_canary=split.segments_to_canary, **context)
        return changed

    def _router(self, service: str) -> OwnedEntries:
        return _router(self._kube, self._settings.router_of(service), self._settings.namespace)

    def _location(self, service: str, slot: Slot) -> tuple[str, str]:
        if slot is Slot.STAGING:
            return self._settings.staging_namespace, service
        return self._settings.namespace, service if slot is Slot.STABLE else f"{service}-canary"

    async def _read(self, namespace: str, name: str) -> Deployment:
        model = await self._kube.call(
            f"read Deployment {namespace}/{name}", lambda: self._kube.apps.read_namespaced_deployment(name, namespace)
        )
        return self._kube.serialize(model)

    async def _read_optional(self, namespace: str, name: str) -> Deployment | None:
        try:
            return await self._read(namespace, name)
        except NotFound:
            return None

    async def _patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        await self._kube.call(f"patch Deployment {namespace}/{name}", lambda: self._kube.apps.patch_namespaced_deployment(
            name, namespace, body, _content_type=STRATEGIC_MERGE_PATCH))

    async def _delete(self, namespace: str, name: str) -> None:
        await self._kube.call(f"delete Deployment {namespace}/{name}", _ignoring(
            404, lambda: self._kube.apps.delete_namespaced_deployment(name, namespace)))


@cache
def _router(kube: Kube, name: str, namespace: str) -> OwnedEntries:
    return router_for(name, kube, namespace)  # a cluster router: see pipeline/catalog.py


# --- blocking calls (run in a thread by Kube.call) -------------------------------------------


def _ignoring(status: int, operation: Callable[[], Any]) -> Callable[[], None]:
    """`operation` with the answer `status` taken as done: a create that finds the object
    made by an attempt whose answer was lost (409), a delete that finds it gone (404)."""
    def run() -> None:
        try:
            operation()
        except ApiException as error:
            if error.status != status:
                raise
    return run


def _allowed(kube: Kube, namespace: str, group: str, resource: str, verb: str) -> bool:
    attributes = {"verb": verb, "group": group, "resource": resource}
    attributes |= {"name": namespace} if resource == "namespaces" else {"namespace": namespace}
    review = kube.authorization.create_self_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    })
    return bool(review.status and review.status.allowed)
