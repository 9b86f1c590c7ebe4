"""Activities that change what runs where and who gets traffic."""

from __future__ import annotations

from temporalio import activity

from activities.errors import permanent_errors_not_retried
from activities.heartbeat import heartbeating
from pipeline.logging import release_logger
from pipeline.models import (
    DeployRequest,
    PreflightReport,
    PreflightRequest,
    PromoteRequest,
    RollbackWindow,
    VersionHealth,
    VersionRequest,
    ServiceRef,
    SlotRequest,
    TrafficRequest,
)
from pipeline.targets import target_for


@activity.defn
async def preflight(request: PreflightRequest) -> PreflightReport:
    with permanent_errors_not_retried():
        report = await target_for(request.ref.target).preflight(request.ref.service, request.suites)
    release_logger(request.ref).info("preflight", stable_version=report.stable_version)
    return report


@activity.defn
async def deploy_version(request: DeployRequest) -> bool:
    with permanent_errors_not_retried():
        changed = await heartbeating(
            target_for(request.ref.target).deploy(request.ref.service, request.slot, request.version, request.env),
            f"deploying {request.version} to {request.slot.value}",
        )
    release_logger(request.ref).info("deployed", slot=request.slot.value, version=request.version, changed=changed)
    return changed


@activity.defn
async def wait_ready(request: DeployRequest) -> None:
    with permanent_errors_not_retried():
        await heartbeating(
            target_for(request.ref.target).wait_ready(request.ref.service, request.slot, request.version, activity.heartbeat),
            f"waiting for {request.slot.value} {request.version}",
        )
    release_logger(request.ref).info("ready", slot=request.slot.value, version=request.version)


@activity.defn
async def set_traffic(request: TrafficRequest) -> bool:
    with permanent_errors_not_retried():
        changed = await heartbeating(
            target_for(request.ref.target).set_traffic(request), f"routing {request.canary_weight}% to the canary"
        )
    release_logger(request.ref).info(
        "traffic set",
        canary_weight=request.canary_weight,
        segments_to_canary=request.segments_to_canary,
        changed=changed,
    )
    return changed


@activity.defn
async def stop_version(request: SlotRequest) -> bool:
    with permanent_errors_not_retried():
        stopped = await heartbeating(
            target_for(request.ref.target).stop(request.ref.service, request.slot), f"stopping {request.slot.value}"
        )
    release_logger(request.ref).info("stopped", slot=request.slot.value, changed=stopped)
    return stopped


@activity.defn
async def promote_canary(ref: ServiceRef) -> str | None:
    with permanent_errors_not_retried():
        previous = await heartbeating(target_for(ref.target).promote(ref.service, activity.heartbeat), "promoting")
    release_logger(ref).info("promoted", previous_version=previous)
    return previous


@activity.defn
async def promote_version(request: PromoteRequest) -> str | None:
    """promote_canary with the release's rollback window recorded (releases started
    before the window existed go on calling promote_canary)."""
    ref = request.ref
    with permanent_errors_not_retried():
        previous = await heartbeating(
            target_for(ref.target).promote(ref.service, activity.heartbeat, release_id=ref.release_id, keep=request.keep),
            "promoting",
        )
    release_logger(ref).info("promoted", previous_version=previous, keep=request.keep)
    return previous


@activity.defn
async def revert_version(request: VersionRequest) -> bool:
    with permanent_errors_not_retried():
        changed = await heartbeating(
            target_for(request.ref.target).revert(request.ref.service, request.version, activity.heartbeat),
            f"reverting to {request.version}",
        )
    release_logger(request.ref).info("reverted", version=request.version, changed=changed)
    return changed


@activity.defn
async def read_rollback_window(ref: ServiceRef) -> RollbackWindow:
    with permanent_errors_not_retried():
        window = await target_for(ref.target).rollback_window(ref.service)
    release_logger(ref).info("rollback window", stable=window.stable, versions=[v.version for v in window.versions],
                             warm=window.warm)
    return window


@activity.defn
async def version_health(request: VersionRequest) -> VersionHealth:
    with permanent_errors_not_retried():
        health = await target_for(request.ref.target).health(request.ref.service, request.version)
    release_logger(request.ref).info("version health", version=request.version, healthy=health.healthy,
                                     detail=health.detail)
    return health


@activity.defn
async def retire_version(request: VersionRequest) -> bool:
    with permanent_errors_not_retried():
        retired = await heartbeating(
            target_for(request.ref.target).retire(request.ref.service, request.version), f"retiring {request.version}"
        )
    release_logger(request.ref).info("retired", version=request.version, changed=retired)
    return retired
