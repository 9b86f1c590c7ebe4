"""Feature flags (issue #13): the flag store family (base.py, one module per
implementation, registered in pipeline/catalog.py's FLAG_STORES), the flagd JSON
(document.py) and the changes people and rollouts make (changes.py)."""

from __future__ import annotations

from pipeline.catalog import FLAG_STORES
from pipeline.flags.base import FlagStore


def store_for(target: str, environment: str) -> FlagStore:
    """The flag store of `environment` on `target`, configured from the process's environment."""
    entry = FLAG_STORES.get(target)
    if entry is None:
        raise ValueError(f"target: {target!r} has no flag store (stores: {', '.join(FLAG_STORES)})")
    return entry.build(environment)
