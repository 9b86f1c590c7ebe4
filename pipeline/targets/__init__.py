"""Deploy targets by name, from the adapter catalog (pipeline/catalog.py). Each
worker builds a target once, from its own environment, the first time a release
asks for it."""

from __future__ import annotations

from functools import cache

from pipeline.catalog import TARGETS
from pipeline.errors import PermanentTargetError
from pipeline.targets.base import DeployTarget


@cache
def target_for(name: str) -> DeployTarget:
    entry = TARGETS.get(name)
    if entry is None:
        raise PermanentTargetError(f"target {name!r} is not available on this worker")
    return entry.build()
