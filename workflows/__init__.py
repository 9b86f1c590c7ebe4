"""The pipeline's workflows. `ALL` lists them for a worker; each is imported only when
asked for, because the workflow sandbox re-imports a workflow's package for every
workflow it runs: a release then loads `workflows.release`, not the flag rollout and
train packages too (about a tenth of a busy worker's CPU in #15's benchmark)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

WORKFLOWS = {
    "ReleaseWorkflow": "workflows.release",
    "ServiceLockWorkflow": "workflows.lock",
    "ReleaseTrainWorkflow": "workflows.train",
    "FeatureRolloutWorkflow": "workflows.flags",
}


def __getattr__(name: str) -> Any:
    if name == "ALL":
        return [__getattr__(workflow) for workflow in WORKFLOWS]
    if name in WORKFLOWS:
        return getattr(import_module(WORKFLOWS[name]), name)
    raise AttributeError(f"module 'workflows' has no attribute {name!r}")
