"""Deploy targets by name. Each worker builds a target once, from its own
environment, the first time a release asks for it."""

from __future__ import annotations

from functools import cache

from pipeline.targets.base import DeployTarget, PermanentTargetError


@cache
def target_for(name: str) -> DeployTarget:
    if name == "local":
        from pipeline.local.env import LocalEnvironment
        from pipeline.targets.local import LocalTarget

        return LocalTarget(LocalEnvironment.from_env())
    if name == "kubernetes":
        from pipeline.targets.kubernetes import KubernetesTarget

        return KubernetesTarget.from_env()
    raise PermanentTargetError(f"target {name!r} is not available on this worker")
