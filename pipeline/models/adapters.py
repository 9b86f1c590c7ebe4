"""Names of the adapters a request may choose (targets, metrics providers) and what
each can serve."""

from __future__ import annotations

from typing import Literal

TargetName = Literal["local", "kubernetes"]
MetricsProviderName = Literal["traefik", "prometheus"]
DEFAULT_METRICS_PROVIDER: dict[str, MetricsProviderName] = {"local": "traefik", "kubernetes": "prometheus"}
"""The provider a release reads when its policy names none, per target."""
PROVIDER_TARGETS: dict[MetricsProviderName, set[str]] = {"traefik": {"local"}, "prometheus": {"local", "kubernetes"}}
SAMPLING_PROVIDERS = {"prometheus"}
"""Providers that return raw samples, which the baseline comparison tests."""
