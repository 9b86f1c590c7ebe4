"""Promotion, revert and retirement on the kubernetes target, around the previous
version kept warm in the canary Deployment; the rollback window and version health.

promote() and revert() make the version the canary Deployment runs stable, in the
same steps (`_make_stable`), each of which reads the live objects and writes only what
differs, so a retry after a crash at any point converges:

1. scale the canary Deployment to the stable Deployment's replicas and wait until it
   is ready: it can take all traffic;
2. route all traffic to the canary (for a revert: the instant return to the warm
   version a bake's breach needs);
3. roll the stable Deployment to the canary's image and env, in one patch with the
   annotations that remember the version and container it replaces and the promotion
   history, and wait for the rollout;
4. route all traffic to stable (the new version's metrics are then the stable track's);
5. point the canary Deployment at the replaced version's image and env, at full
   replicas, and wait until it is ready: the warm previous version.

Steps 1 to 3 are skipped once stable runs the version. The canary Deployment's role
annotation tells a release's candidate from the warm previous version, so a promote
retried after step 5 does not promote the warm version.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from pipeline.errors import PermanentTargetError
from pipeline.models import RollbackWindow, Slot, VersionHealth
from pipeline.routers.base import Split
from pipeline.targets.base import Progress, no_progress
from pipeline.targets.deployments import (
    HISTORY_ANNOTATION,
    PREVIOUS_ANNOTATION,
    PREVIOUS_CONTAINER_ANNOTATION,
    REQUESTED_ENV_ANNOTATION,
    ROLE_ANNOTATION,
    WARM,
    Deployment,
    annotations,
    container_change,
    container_snapshot,
    from_snapshot,
    main_container,
    not_warm,
    readiness_problem,
    requested_env,
    role,
    runs,
    warm_version,
)
from pipeline.targets.history import History, parsed, promoted, reverted, window

log = structlog.get_logger()

Record = Callable[[History, str | None], History]
"""The history once stable replaced the given version."""


class Promoting:
    """Part of KubernetesTarget (pipeline/targets/kubernetes.py), kept apart by concern;
    uses its reads, writes, routing and wait_ready."""

    async def promote(
        self, service: str, progress: Progress = no_progress, *, release_id: str = "", keep: int = 2
    ) -> str | None:
        stable, canary = await self._stable_and_canary(service)
        if canary is not None and role(canary) == WARM:
            await self._keep_warm(service, progress)  # promoted before: a retry
        elif canary is not None:
            version, env = runs(canary, service), requested_env(canary)
            await self._make_stable(service, version, stable, canary, progress, "promote", lambda history, replaced: (
                promoted(history, version, env, release_id, replaced, keep)))
            log.info("canary.promoted", service=service, version=version)
        stable, _ = await self._stable_and_canary(service)
        return annotations(stable).get(PREVIOUS_ANNOTATION)

    async def revert(self, service: str, version: str, progress: Progress = no_progress) -> bool:
        stable, canary = await self._stable_and_canary(service)
        if runs(stable, service) != version and (problem := not_warm(canary, service, version)):
            raise PermanentTargetError(f"{service} {version} is not warm: {problem}")
        changed = await self._make_stable(service, version, stable, canary, progress, "revert", lambda history, replaced: (
            reverted(history, version, replaced)))
        log.info("version.reverted", service=service, version=version, changed=changed)
        return changed

    async def retire(self, service: str, version: str) -> bool:
        stable, canary = await self._stable_and_canary(service)
        retired = False
        if canary is not None and role(canary) == WARM and runs(canary, service) == version:
            await self._delete(self._settings.namespace, f"{service}-canary")
            retired = True
        if annotations(stable).get(PREVIOUS_ANNOTATION) == version:
            await self._patch(self._settings.namespace, service, {"metadata": {"annotations": {
                PREVIOUS_ANNOTATION: None, PREVIOUS_CONTAINER_ANNOTATION: None}}})
            retired = True
        if retired:
            log.info("version.retired", service=service, version=version)
        return retired

    async def rollback_window(self, service: str) -> RollbackWindow:
        stable, canary = await self._stable_and_canary(service)
        history = parsed(annotations(stable).get(HISTORY_ANNOTATION))
        return window(history, runs(stable, service), warm_version(canary, service))

    async def health(self, service: str, version: str) -> VersionHealth:
        """Healthy when a Deployment (stable or canary) running `version` has every
        replica ready."""
        problems = []
        for deployment in await self._stable_and_canary(service):
            if deployment is None or runs(deployment, service) != version:
                continue
            name = f"Deployment {self._settings.namespace}/{deployment['metadata']['name']}"
            if (problem := readiness_problem(deployment)) is None:
                return VersionHealth(version=version, healthy=True,
                                     detail=f"{name}: {deployment['spec']['replicas']} replicas ready")
            problems.append(f"{name}: {problem}")
        return VersionHealth(version=version, healthy=False, detail="; ".join(problems) or "not running")

    # --- the steps -----------------------------------------------------------------------

    async def _make_stable(
        self, service: str, version: str, stable: Deployment, canary: Deployment | None, progress: Progress,
        reason: str, record: Record,
    ) -> bool:
        """Steps 1 to 5 (see the module docstring) for `version`, which the canary runs
        unless stable already does (then steps 4 and 5). Returns whether anything changed."""
        changed = False
        if runs(stable, service) != version:
            await self._scale_like(service, canary, stable)
            await self.wait_ready(service, Slot.CANARY, version, progress)
            await self._route(service, Split(canary_weight=100), reason=reason)
            await self._roll_stable(service, stable, canary, record)
            changed = True
        await self.wait_ready(service, Slot.STABLE, version, progress)
        changed |= await self._route(service, Split(canary_weight=0), reason=reason)
        return await self._keep_warm(service, progress) or changed

    async def _scale_like(self, service: str, canary: Deployment, stable: Deployment) -> None:
        replicas = stable["spec"].get("replicas", 1)
        if canary["spec"].get("replicas") != replicas:
            await self._patch(self._settings.namespace, f"{service}-canary", {"spec": {"replicas": replicas}})

    async def _roll_stable(self, service: str, stable: Deployment, canary: Deployment, record: Record) -> None:
        """Start stable's rolling update to the canary's image and env. The same patch
        remembers the version and container stable ran, and records the change in the
        history: a crash leaves all of it or none."""
        replaced, source = runs(stable, service), main_container(canary, service)
        history = record(parsed(annotations(stable).get(HISTORY_ANNOTATION)), replaced)
        await self._patch(self._settings.namespace, service, {
            "metadata": {"annotations": {
                PREVIOUS_ANNOTATION: replaced,
                PREVIOUS_CONTAINER_ANNOTATION: container_snapshot(stable, service),
                HISTORY_ANNOTATION: history.model_dump_json(),
            }},
            "spec": {"template": {"spec": {"containers": [
                container_change(main_container(stable, service)["name"], source["image"], source.get("env", []))
            ]}}},
        })

    async def _keep_warm(self, service: str, progress: Progress) -> bool:
        """Step 5: the canary Deployment, once its version is stable, runs the version
        stable replaced, as it ran, at stable's replicas; so does a warm one (it may run
        the version a revert made stable). A release's candidate of another version is
        left alone, and so is a retired (deleted) canary; without a replaced version to
        run, the canary is scaled to zero."""
        stable, canary = await self._stable_and_canary(service)
        previous = annotations(stable).get(PREVIOUS_ANNOTATION)
        snapshot = annotations(stable).get(PREVIOUS_CONTAINER_ANNOTATION)
        if canary is None or (role(canary) != WARM and runs(canary, service) != runs(stable, service)):
            return False
        if previous is None or snapshot is None:
            return await self.stop(service, Slot.CANARY)
        image, env = from_snapshot(snapshot)
        changed = await self._converge(
            self._settings.namespace, f"{service}-canary", canary, service, image=image, env=env,
            replicas=stable["spec"].get("replicas", 1), marks={ROLE_ANNOTATION: WARM, REQUESTED_ENV_ANNOTATION: None},
        )
        await self.wait_ready(service, Slot.CANARY, previous, progress)
        return changed

    async def _stable_and_canary(self, service: str) -> tuple[Deployment, Deployment | None]:
        namespace = self._settings.namespace
        return await self._read(namespace, service), await self._read_optional(namespace, f"{service}-canary")
