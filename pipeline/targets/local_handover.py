"""Zero-downtime hand-over on the local target: a version that stops (retired,
superseded, rolled back, replaced in its slot) is first taken out of the router, then
left to drain, then stopped with SIGTERM, which the sample gallery answers by
finishing what is in flight (pipeline/gallery/app.py).

Draining waits for quiet, not only for nothing in flight: Traefik applies a routing
change while requests it routed before are still on their way, some on keep-alive
connections it holds to the old backend. Once the gallery has had no request for
DRAIN_QUIET_SECONDS, the router's last one has landed.

How long one stop takes: usually DRAIN_QUIET_SECONDS and the gallery's exit, about a
second. At worst, the router's confirmation (pipeline/routers/traefik.py, 10 s) when
the process still had traffic, DRAIN_TIMEOUT_SECONDS, and STOP_GRACE_SECONDS before
SIGKILL: about 25 s, inside the 30 s a service lock's rollback grants stop_version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import structlog

from pipeline.gallery.app import INFLIGHT_PATH
from pipeline.http import http_client
from pipeline.routers.base import Split

log = structlog.get_logger()

DRAIN_TIMEOUT_SECONDS = 5.0
DRAIN_QUIET_SECONDS = 0.5
DRAIN_POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 8.0
"""Above the gallery's own drain after SIGTERM (5 s), so that SIGKILL is a last resort."""


def sends_traffic_to(split: Split, url: str) -> bool:
    """Whether routing as `split` can send a request to the process at `url`."""
    return url == split.stable_url or (url == split.canary_url and split.needs_canary)


def without(split: Split, url: str) -> Split:
    """`split` with the process at `url` taken out of it."""
    if url == split.canary_url:
        return dataclasses.replace(split, canary_weight=0, segments_to_canary=False, canary_url=None)
    return dataclasses.replace(split, stable_url=None)


async def wait_drained(url: str, timeout_seconds: float = DRAIN_TIMEOUT_SECONDS) -> bool:
    """Wait until the process at `url` serves no request and has had none for
    DRAIN_QUIET_SECONDS. One that does not answer (gone, or without the endpoint)
    counts as drained. False when `timeout_seconds` passed first: the caller stops it
    anyway, and SIGTERM still lets it finish what it has accepted."""
    deadline = time.monotonic() + timeout_seconds
    async with http_client(base_url=url, timeout=1) as client:
        while (report := await _inflight(client)) is not None and report["idle_seconds"] < DRAIN_QUIET_SECONDS:
            if time.monotonic() > deadline:
                log.warning("drain.timed_out", url=url, inflight=report["inflight"], timeout_seconds=timeout_seconds)
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)
    return True


async def _inflight(client: httpx.AsyncClient) -> dict | None:
    try:
        response = await client.get(INFLIGHT_PATH)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None
