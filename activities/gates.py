"""Activities that read the release gates: the worker's gates file, the deployment
calendar, the platform's live activity, and webhook notifications. None of them
changes what runs where."""

from __future__ import annotations

import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from pipeline.decisions.calendar import evaluate
from pipeline.gates import GatesConfigError, load_gates_config, release_gates
from pipeline.http import http_client
from pipeline.logging import release_logger
from pipeline.models import (
    CalendarRequest,
    CalendarVerdict,
    GatesConfig,
    LiveActivityCheck,
    LiveActivityReport,
    NotifyRequest,
    ReleaseGates,
    ServiceRef,
    Slot,
)
from pipeline.notifications import DeliveryFailed, deliver
from pipeline.targets import target_for

STABLE_PLACEHOLDER = "{stable}"


@activity.defn
async def load_gates(ref: ServiceRef) -> ReleaseGates:
    config, source = _config()
    gates = release_gates(config, ref.service, source)
    release_logger(ref).info("gates loaded", source=gates.source, approval_stages=sorted(gates.approvals))
    return gates


@activity.defn
async def check_calendar(request: CalendarRequest) -> CalendarVerdict:
    """Whether production may change at `request.at` (the workflow's clock, so that a
    replay or a time-skipping test sees the same answer)."""
    config, _ = _config()
    verdict = evaluate(config.for_service(request.ref.service).calendar, request.at)
    release_logger(request.ref).info("calendar checked", open=verdict.open, reason=verdict.reason)
    return verdict


@activity.defn
async def check_live_activity(ref: ServiceRef) -> LiveActivityReport:
    """Uploads, processing jobs and client sessions in progress on the platform. An
    endpoint that cannot be read fails the activity: unknown is never clear."""
    config, _ = _config()
    check = config.for_service(ref.service).live_activity
    if check is None or (check.targets and ref.target not in check.targets):
        report = LiveActivityReport(clear=True, detail=f"no live-activity endpoint configured for {ref.service} on {ref.target}")
    else:
        report = await heartbeating(_read_live_activity(ref, check), "reading live activity")
    release_logger(ref).info("live activity checked", clear=report.clear, counts=report.counts)
    return report


@activity.defn
async def notify(request: NotifyRequest) -> None:
    config, _ = _config()
    webhook = next((w for w in config.for_service(request.ref.service).webhooks if w.name == request.webhook), None)
    log = release_logger(request.ref).bind(webhook=request.webhook, event=request.notification.event.value)
    if webhook is None:
        log.warning("notification dropped: webhook no longer configured")
        return
    url = os.environ.get(webhook.url_env)
    if not url:
        raise ApplicationError(f"webhook {webhook.name}: {webhook.url_env} is not set on the worker", non_retryable=True)
    try:
        await deliver(webhook, url, request.notification)
    except DeliveryFailed as failure:
        log.warning("notification failed", error=str(failure), attempt=activity.info().attempt)
        raise ApplicationError(str(failure), type="DeliveryFailed") from None
    log.info("notified", sequence=request.notification.sequence)


def _config() -> tuple[GatesConfig, str]:
    try:
        return load_gates_config()
    except GatesConfigError as error:
        raise ApplicationError(str(error), type="GatesConfigError") from None


async def _read_live_activity(ref: ServiceRef, check: LiveActivityCheck) -> LiveActivityReport:
    url = check.url
    if STABLE_PLACEHOLDER in url:
        target = target_for(ref.target)
        if await target.stable_version(ref.service) is None:
            return LiveActivityReport(clear=True, detail="no stable version serves users yet")
        url = url.replace(STABLE_PLACEHOLDER, target.endpoint(ref.service, Slot.STABLE))
    try:
        async with http_client(timeout=check.timeout_seconds) as client:
            response = await client.get(url)
        if not response.is_success:
            raise ValueError(f"HTTP {response.status_code}")
        body = response.json()
        counts = {name: int(body[name]) for name in check.counters}
    except httpx.HTTPError as error:
        raise ApplicationError(f"live activity of {ref.service} unreadable: {type(error).__name__}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ApplicationError(f"live activity of {ref.service} unreadable: {type(error).__name__}: {error}") from None
    active = {name: count for name, count in counts.items() if count > 0}
    detail = ", ".join(f"{count} {name}" for name, count in active.items()) or "no live activity"
    return LiveActivityReport(clear=not active, counts=counts, detail=detail)
