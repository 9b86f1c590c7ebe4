"""Names of the adapters a request may choose (targets, metrics providers), derived
from the adapter catalog (pipeline/catalog.py), which also says what each can serve."""

from __future__ import annotations

from typing import Literal

from pipeline.catalog import METRICS_PROVIDERS, TARGETS

TargetName = Literal[tuple(TARGETS)]  # type: ignore[valid-type]
MetricsProviderName = Literal[tuple(METRICS_PROVIDERS)]  # type: ignore[valid-type]
