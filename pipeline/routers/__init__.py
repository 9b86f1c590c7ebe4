"""Traffic routers by name, from the adapter catalog (pipeline/catalog.py)."""

from __future__ import annotations

from typing import Any

from pipeline.catalog import ROUTERS
from pipeline.errors import PermanentTargetError
from pipeline.routers.base import TrafficRouter


def router_for(name: str, *args: Any) -> TrafficRouter:
    """Build router `name` with the arguments its targets give (see pipeline/catalog.py)."""
    entry = ROUTERS.get(name)
    if entry is None:
        raise PermanentTargetError(f"router {name!r} is not available on this worker")
    return entry.build(*args)
