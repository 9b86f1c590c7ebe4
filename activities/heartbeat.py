"""Heartbeats for activities that wait on the world, so that a lost worker is noticed
within the workflow's heartbeat timeout (seconds), and a cancelled activity (a kill
switch abandoned its traffic change) stops at its next beat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")
BEAT_SECONDS = 1.0


async def heartbeating(work: Awaitable[T], detail: str) -> T:
    """Await `work`, heartbeating every BEAT_SECONDS meanwhile; cancelling the activity
    cancels the work. A local activity has no heartbeat (its bound is its timeout)."""
    task = asyncio.ensure_future(work)
    beats = not activity.info().is_local
    try:
        while not task.done():
            if beats:
                activity.heartbeat(detail)
            await asyncio.wait({task}, timeout=BEAT_SECONDS)
    finally:
        task.cancel()
    return task.result()
