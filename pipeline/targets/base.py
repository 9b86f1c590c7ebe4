"""The deploy-target interface: everything the release workflow's activities ask of
the place where versions run. One module per implementation (local, kubernetes).

Every method is idempotent: a retry after a crash finds the work done and does
nothing more, so each deploy and traffic step is applied exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pipeline.models import PreflightReport, RollbackWindow, Slot, TrafficRequest, VersionHealth
from pipeline.routers.base import Split

Progress = Callable[[str], None]
"""Called while a long operation waits; activities turn it into a heartbeat."""


def no_progress(message: str) -> None:
    """A Progress for callers that do not report it anywhere."""


def split_of(request: TrafficRequest, stable_url: str | None = None, canary_url: str | None = None) -> Split:
    """The routing spec a traffic request asks for, with the backends a router that
    addresses processes needs."""
    return Split(
        canary_weight=request.canary_weight,
        segments_to_canary=request.segments_to_canary,
        segment_header=request.segment_header,
        canary_segments=tuple(request.canary_segments),
        stable_url=stable_url,
        canary_url=canary_url,
    )


class DeployTarget(Protocol):
    name: str

    async def preflight(self, service: str, suites: list[str]) -> PreflightReport:
        """Check the target can run this release before anything changes."""

    async def deploy(self, service: str, slot: Slot, version: str, env: dict[str, str]) -> bool:
        """Run `version` in `slot` (staging or canary). Returns False when it already ran there."""

    async def wait_ready(self, service: str, slot: Slot, version: str, progress: Progress) -> None:
        """Return once the version in `slot` passes its readiness check; raise
        TargetError (pipeline/errors.py) on timeout."""

    def endpoint(self, service: str, slot: Slot) -> str:
        """Base URL that reaches the version in `slot` directly (for test suites)."""

    async def set_traffic(self, request: TrafficRequest) -> bool:
        """Route traffic as requested and return once the router serves it.
        Returns False when the routing already was so."""

    async def stop(self, service: str, slot: Slot) -> bool:
        """Stop whatever runs in `slot`. Returns False when nothing ran there."""

    async def promote(
        self, service: str, progress: Progress = no_progress, *, release_id: str = "", keep: int = 2
    ) -> str | None:
        """Make the canary the stable version with all traffic, keeping the previous
        stable version warm (running, no traffic) until retired or reverted to.
        Returns the previous stable version. Records the promotion in the service's
        rollback window, which keeps the `keep` versions promoted before this one (with
        their env). May wait for a rolling update, reporting through `progress`."""

    async def revert(self, service: str, version: str, progress: Progress = no_progress) -> bool:
        """Send all traffic to the warm previous `version` and make it stable; the
        version it replaces becomes the warm previous one. Returns False when `version`
        already was stable. Raises PermanentTargetError when `version` is not warm."""

    async def rollback_window(self, service: str) -> RollbackWindow:
        """The promoted versions a revert may return to, and which of them are warm."""

    async def health(self, service: str, version: str) -> VersionHealth:
        """Whether the process(es) running `version` pass their readiness check now.
        A version that runs nowhere is unhealthy."""

    async def retire(self, service: str, version: str) -> bool:
        """Remove an idle previous version, after its in-flight requests drained.
        Returns False when it was already gone."""

    async def stable_version(self, service: str) -> str | None:
        """The version serving production traffic, or None before the first release."""
