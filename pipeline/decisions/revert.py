"""Where a revert goes: a version of the rollback window, warm or deployed again.
Pure, so that it runs inside the workflow and a refusal changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.models import RollbackWindow


class RevertRefused(ValueError):
    """The revert asked for cannot be done; the message says why."""


@dataclass(frozen=True)
class RevertPlan:
    version: str
    warm: bool
    """Still running without traffic: the revert is a routing change."""
    env: dict[str, str] = field(default_factory=dict)
    """The configuration the version ran with when it was stable."""


def plan_revert(window: RollbackWindow, service: str, to_version: str | None) -> RevertPlan:
    """The version to return to: `to_version`, or without one the newest version
    promoted before stable. A version still warm may always be returned to (the one a
    revert just left, for instance: going back is a routing change). Refused when
    there is no stable version, when the version already is stable, is outside the
    window and not warm, or was never promoted."""
    if window.stable is None:
        raise RevertRefused(f"{service} has no stable version: there is nothing to revert")
    if to_version == window.stable:
        raise RevertRefused(f"{to_version} already is the stable version of {service}")
    kept = {entry.version: entry for entry in window.versions}
    if to_version is None:
        if not window.versions:
            raise RevertRefused(f"no version of {service} promoted before {window.stable} is known")
        to_version = window.versions[0].version
    if to_version in kept:
        return RevertPlan(version=to_version, warm=to_version in window.warm, env=dict(kept[to_version].env))
    if to_version in window.warm:
        return RevertPlan(version=to_version, warm=True)
    in_window = ", ".join(kept) or "none"
    if to_version in window.older:
        raise RevertRefused(
            f"{to_version} is outside the rollback window of {service} (versions it keeps: {in_window}); "
            "release it again instead"
        )
    raise RevertRefused(f"{to_version} was never promoted for {service} (versions a revert may go to: {in_window})")
