"""Every failure an adapter (deploy target, traffic router, metrics provider, the
local environment, the Kubernetes API access) reports. Imports nothing of the
pipeline, so every layer may import it: the adapters raise these, the activities
translate them into Temporal's retry semantics (activities/errors.py,
activities/metrics.py)."""

from __future__ import annotations


class TargetError(Exception):
    """A failure the target reports in words an operator can act on. Retried."""


class PermanentTargetError(TargetError):
    """A failure that no retry can fix (unknown service, bad configuration)."""


class NotFound(PermanentTargetError):
    """The named Kubernetes object does not exist."""


class LocalEnvironmentError(TargetError):
    """The local environment cannot be brought up (missing binary, port taken)."""


class MetricsUnavailable(Exception):
    """The metrics provider could not be read. Never to be taken as healthy."""
