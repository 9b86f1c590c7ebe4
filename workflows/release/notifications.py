"""Notifications: every webhook that wants an event is told, without the release
ever waiting for it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import notify
    from pipeline.models import Notification, NotificationEvent, NotifyRequest

from workflows.release.calls import activity_options, cause
from workflows.release.timeline import TIMELINE_LIMIT

NOTIFY_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=10), maximum_attempts=3
)


NOTIFY_DRAIN_SECONDS = 60
"""How long a finished release waits for its last notifications before it closes."""


class Notifications:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _notify(self, event: NotificationEvent, message: str, **fields: Any) -> None:
        """Tell every webhook that wants `event`, without waiting: a slow or failing
        webhook never holds a release up. Failures are kept in status."""
        gates = self._status.gates
        webhooks = [name for name, events in (gates.webhooks if gates else {}).items() if event in events]
        if not webhooks:
            return
        self._notifications += 1
        notification = Notification(
            event=event,
            sequence=self._notifications,
            release_id=self._status.release_id,
            service=self._request.service,
            version=self._request.version,
            phase=self._status.phase,
            at=self._now(),
            message=message,
            **fields,
        )
        for webhook in webhooks:
            request = NotifyRequest(ref=self._ref(), webhook=webhook, notification=notification)
            self._deliveries.append(asyncio.create_task(self._deliver(request)))

    async def _deliver(self, request: NotifyRequest) -> None:
        summary = f"notify {request.webhook}: {request.notification.event.value}"
        try:
            await workflow.execute_activity(
                notify, request, **activity_options(summary, timedelta(seconds=30), NOTIFY_RETRIES)
            )
        except ActivityError as error:
            failure = f"{request.notification.at} {summary} #{request.notification.sequence} failed: {cause(error)}"
            self._status.notification_failures = [*self._status.notification_failures, failure][-TIMELINE_LIMIT:]
            workflow.logger.warning(
                failure, extra={"release_id": self._status.release_id, "service": self._request.service}
            )

    async def _drain_notifications(self) -> None:
        """Give the last notifications a bounded chance to go out before the release closes."""
        if any(not delivery.done() for delivery in self._deliveries):
            try:
                await workflow.wait_condition(
                    lambda: all(delivery.done() for delivery in self._deliveries), timeout=NOTIFY_DRAIN_SECONDS
                )
            except asyncio.TimeoutError:
                self._note("closing with notifications still undelivered")
