"""Webhook notifications: a release's events rendered as Slack-compatible or generic
JSON and posted to the webhooks of the gates file.

Delivery is at least once (the activity retries), so every post carries an
`Idempotency-Key` header (release id, sequence, webhook) that a receiver can use to
drop repeats. Errors never quote the URL: Slack's carries its token.
"""

from __future__ import annotations

import httpx

from pipeline.http import http_client
from pipeline.models import Notification, Webhook

IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_TITLES = {
    "approval_needed": "Approval needed",
    "phase": "Phase change",
    "held": "Release held",
    "rollback": "Rolling back",
    "finished": "Release finished",
}


class DeliveryFailed(Exception):
    """The webhook did not accept the notification; the message is safe to record."""


def render(notification: Notification, format: str) -> dict:
    return _slack(notification) if format == "slack" else _generic(notification)


async def deliver(webhook: Webhook, url: str, notification: Notification) -> None:
    key = f"{notification.release_id}/{notification.sequence}/{webhook.name}"
    try:
        async with http_client(timeout=webhook.timeout_seconds) as client:
            response = await client.post(url, json=render(notification, webhook.format), headers={IDEMPOTENCY_HEADER: key})
    except httpx.TimeoutException:
        raise DeliveryFailed(f"webhook {webhook.name}: no answer within {webhook.timeout_seconds:g}s") from None
    except httpx.HTTPError as error:
        raise DeliveryFailed(f"webhook {webhook.name}: {type(error).__name__}") from None
    if not response.is_success:
        raise DeliveryFailed(f"webhook {webhook.name}: HTTP {response.status_code}")


def _generic(notification: Notification) -> dict:
    return notification.model_dump(mode="json", exclude_none=True)


def _slack(notification: Notification) -> dict:
    """Slack's incoming-webhook format: `text` for notifications, blocks for the channel."""
    title = f"{EVENT_TITLES[notification.event.value]}: {notification.service} {notification.version or ''}".rstrip()
    facts = [f"*Release* `{notification.release_id}`", f"*Phase* {notification.phase.value}"]
    if notification.outcome:
        facts.append(f"*Outcome* {notification.outcome.value}")
    if notification.breach:
        breach = notification.breach
        facts.append(f"*Breached* {breach.metric.value} = {breach.value} (threshold {breach.threshold})")
    if notification.stage:
        facts.append(f"*Stage* {notification.stage.value}")
    if notification.approvers:
        facts.append(f"*Approvers* {', '.join(notification.approvers)}")
    if notification.deadline:
        facts.append(f"*Deadline* {notification.deadline}")
    return {
        "text": f"{title}: {notification.message}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": notification.message[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fact} for fact in facts]},
        ],
    }
